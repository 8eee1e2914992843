package s3store_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
)

// repeatReader yields n bytes repeating block: a source that costs no CPU, so that the benchmark
// measures the store (hashing, buffering, requests) and the server.
type repeatReader struct {
	block []byte
	n     int64
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	total := 0
	for len(p) > 0 {
		c := copy(p, r.block[r.off:])
		r.off = (r.off + c) % len(r.block)
		p = p[c:]
		total += c
	}
	r.n -= int64(total)
	return total, nil
}

// BenchmarkPutMultipart writes a 256 MiB object into MinIO with the default part size and
// concurrency; it reports MB/s and allocations per object.
func BenchmarkPutMultipart(b *testing.B) {
	const size = 256 << 20
	srv := testserver.Shared(b, testserver.KindMinIO)
	srv.IsolateAWSEnv(b)
	opts := s3store.Options{Endpoint: srv.Endpoint, Region: srv.Region}
	client, err := s3store.NewClient(b.Context(), opts)
	if err != nil {
		b.Fatal(err)
	}
	s := s3store.New(client, srv.NewBucket(b, "bench"), "", opts)
	block := randBytes(8, 1<<20+13)
	h := sha256.New()
	if _, err := io.Copy(h, &repeatReader{block: block, n: size}); err != nil {
		b.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		info, err := s.Put(b.Context(), "big/object", &repeatReader{block: block, n: size}, store.PutOptions{Size: size, SHA256: want})
		if err != nil {
			b.Fatal(err)
		}
		if info.SHA256 != want {
			b.Fatalf("sha256 %s, want %s", info.SHA256, want)
		}
	}
}
