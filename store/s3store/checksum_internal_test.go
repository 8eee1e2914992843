package s3store

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/minio/crc64nvme"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
)

// TestCombine: the CRC combined from the parts' CRCs equals the CRC of the whole, for both
// algorithms and for parts of many lengths (including empty ones).
func TestCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, c := range []Checksum{ChecksumCRC32C, ChecksumCRC64NVME} {
		for trial := 0; trial < 50; trial++ {
			var whole *sum
			off := 0
			for off < len(data) {
				n := min(len(data)-off, r.IntN(200_000))
				whole = combine(whole, c.sumOf(data[off:off+n]))
				off += n
			}
			var want uint64
			if c == ChecksumCRC32C {
				want = uint64(crc32.Checksum(data, castagnoli))
			} else {
				want = crc64nvme.Checksum(data)
			}
			if whole.crc != want || whole.n != int64(len(data)) {
				t.Fatalf("%s trial %d: combined %x (%d bytes), want %x", c, trial, whole.crc, whole.n, want)
			}
		}
	}
}

// TestSumEncoding: header values as S3 documents them (base64 of the big-endian value).
func TestSumEncoding(t *testing.T) {
	data := []byte("123456789")
	for c, want := range map[Checksum]string{
		ChecksumCRC32C: "4waSgw==", // CRC-32C check value 0xe3069283
		ChecksumMD5:    "JfnnlDI7RTiF9RgfG2JNCw==",
	} {
		if got := c.sumOf(data).String(); got != want {
			t.Errorf("%s of %q = %s, want %s", c, data, got, want)
		}
	}
	if ChecksumNone.sumOf(data) != nil {
		t.Error("none has a sum")
	}
}

func TestParseChecksum(t *testing.T) {
	for in, want := range map[string]Checksum{"": ChecksumCRC32C, "CRC32C": ChecksumCRC32C, "crc64nvme": ChecksumCRC64NVME, "md5": ChecksumMD5, "none": ChecksumNone} {
		if got, err := ParseChecksum(in); err != nil || got != want {
			t.Errorf("ParseChecksum(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseChecksum("sha1"); err == nil {
		t.Error("ParseChecksum(sha1) succeeded")
	}
}

// TestHostileSizes: declared sizes beyond S3's largest object, or whose parts (S3 allows 10,000)
// would not fit in the buffer budget, are refused with the key named, before anything is read,
// allocated or sent (the store has no client: any request would panic).
func TestHostileSizes(t *testing.T) {
	s := New(nil, "b", "mirror", Options{})
	for _, size := range []int64{9e18, 1<<63 - 1, MaxObjectSize + 1, MaxObjectSize, 400 << 30} {
		_, err := s.Put(t.Context(), "big/file", strings.NewReader("x"), store.PutOptions{Size: size})
		if err == nil || !strings.Contains(err.Error(), "s3://b/mirror/big/file") {
			t.Errorf("Put of a declared %d bytes = %v, want a refusal naming the key", size, err)
		}
		if size <= MaxObjectSize && !errors.Is(err, ErrBufferBudget) {
			t.Errorf("Put of a declared %d bytes = %v, want ErrBufferBudget", size, err)
		}
	}
	// A budget that holds the parts of a 5 TiB object lets partSizeFor accept it.
	big := New(nil, "b", "", Options{BufferBudget: 2 << 30})
	if ps, err := big.partSizeFor("k", MaxObjectSize); err != nil || ps*MaxParts < MaxObjectSize {
		t.Errorf("partSizeFor(5 TiB) with a 2 GiB budget = %d, %v", ps, err)
	}
}

// TestLargePartsTakeTheBudget: a buffer larger than the part size takes as many parts' worth of
// the shared budget as it holds, and waits while the budget has no room for it; the budget is
// never exceeded.
func TestLargePartsTakeTheBudget(t *testing.T) {
	s := New(nil, "b", "", Options{PartSize: MinPartSize, BufferBudget: 4 * MinPartSize})
	ctx := t.Context()
	a, err := s.getBuf(ctx, 3*MinPartSize-1) // three parts' worth
	if err != nil || a.units != 3 || len(a.b) != 3*MinPartSize-1 {
		t.Fatalf("getBuf: %v units %d", err, a.units)
	}
	b, err := s.getBuf(ctx, 100) // one part
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if c, err := s.getBuf(short, 2*MinPartSize); err == nil {
		t.Fatalf("got a two-part buffer with the budget full (%d units)", c.units)
	}
	got := make(chan *partBuf)
	go func() {
		c, _ := s.getBuf(ctx, 2*MinPartSize)
		got <- c
	}()
	s.putBuf(a)
	c := <-got
	if c == nil || c.units != 2 {
		t.Fatalf("after a release: %+v", c)
	}
	s.putBuf(b)
	s.putBuf(c)
	if p := s.PeakBuffers(); p > s.BufferBudget() {
		t.Errorf("peak %d bytes of buffers, budget %d", p, s.BufferBudget())
	}
	if _, err := s.getBuf(ctx, 5*MinPartSize); err == nil {
		t.Error("a buffer larger than the whole budget was handed out")
	}
}

// FuzzPartSizeFor: for any declared size and store settings, partSizeFor either refuses, or
// returns a part size with which the object fits in MaxParts parts and one part fits in the
// budget; nothing panics or overflows.
func FuzzPartSizeFor(f *testing.F) {
	f.Add(int64(9e18), int64(0), int64(0))
	f.Add(int64(MaxObjectSize), int64(MinPartSize), int64(1<<40))
	f.Add(int64(-1), int64(1<<62), int64(-5))
	f.Add(int64(52428800001), int64(MinPartSize), int64(4*MinPartSize))
	f.Fuzz(func(t *testing.T, size, partSize, budget int64) {
		s := New(nil, "b", "", Options{PartSize: partSize, BufferBudget: budget})
		if s.partSize < MinPartSize || s.partSize > MaxPartSize || s.BufferBudget() < 2*s.partSize {
			t.Fatalf("New(part size %d, budget %d): part size %d, budget %d", partSize, budget, s.partSize, s.BufferBudget())
		}
		ps, err := s.partSizeFor("k", size)
		if err != nil {
			if !strings.Contains(err.Error(), "s3://b/k") {
				t.Errorf("refusal without the key: %v", err)
			}
			return
		}
		if size > MaxObjectSize || ps < s.partSize || (size > 0 && (size+ps-1)/ps > MaxParts) || s.units(ps) > s.bufs.units {
			t.Errorf("size %d: part size %d (store %d, budget %d)", size, ps, s.partSize, s.BufferBudget())
		}
	})
}

// TestLargePartsUploadWithinBudget: a multipart upload whose parts are larger than the store's
// part size (as for objects above MaxParts × PartSize) takes them from the shared budget:
// never more buffer bytes at once than the budget, though the store's PartConcurrency would
// allow more parts in flight; the object lands intact with its CRC verified.
func TestLargePartsUploadWithinBudget(t *testing.T) {
	srv := testserver.Shared(t, testserver.KindMinIO)
	srv.IsolateAWSEnv(t)
	opts := Options{Endpoint: srv.Endpoint, Region: srv.Region, PartSize: MinPartSize, PartConcurrency: 4, BufferBudget: 5 * MinPartSize}
	client, err := NewClient(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	s := New(client, srv.NewBucket(t, "largeparts"), "", opts)
	data := make([]byte, 7*MinPartSize+12345)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	const partSize = 2 * MinPartSize // two units of the five-unit budget: two parts at once
	popts := store.PutOptions{Size: int64(len(data))}
	v := store.NewVerifier("big", bytes.NewReader(data), popts)
	first, err := s.getBuf(t.Context(), partSize)
	if err != nil {
		t.Fatal(err)
	}
	_, cs, err := s.checksum.readPart(v, first.b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.putMultipart(t.Context(), "big", v, popts, partSize, first, cs); err != nil {
		t.Fatal(err)
	}
	if p := s.PeakBuffers(); p > s.BufferBudget() || p < 2*partSize {
		t.Errorf("peak buffers %d bytes, budget %d (want two parts of %d in flight at most)", p, s.BufferBudget(), partSize)
	}
	if n := s.bufs.inUse.Load(); n != 0 {
		t.Errorf("%d budget units still taken after the upload", n)
	}
	got, err := store.ReadAll(t.Context(), s, "big", 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("the object did not land intact (err %v)", err)
	}
}
