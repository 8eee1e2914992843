// Package storetest is the conformance suite every store.Target backend runs: memory, directory,
// and S3 against real servers. Each contract written in store/store.go has a subtest here.
//
// A backend's test calls Run with a constructor that returns a new, empty store on each call:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Target { return memstore.New() })
//	}
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/ssmirror/ssmirror/store"
)

// LargeSize is the size in bytes of the object the "LargeStreaming" subtest writes and reads
// back. The test never holds it in memory whole. S3 suites may raise it above their multipart
// part size so that the multipart path is exercised.
var LargeSize int64 = 24 << 20

// Run runs the conformance suite against stores made by newStore; each call gives a new, empty
// store.
func Run(t *testing.T, newStore func(t *testing.T) store.Target) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Target)
	}{
		{"MissingKey", testMissingKey},
		{"PrefixIsNotAnObject", testPrefixIsNotAnObject},
		{"RoundTrip", testRoundTrip},
		{"RoundTripWithoutExpectedSHA256", testRoundTripWithoutSHA},
		{"EmptyObject", testEmptyObject},
		{"SizeUnknown", testSizeUnknown},
		{"PartialReads", testPartialReads},
		{"OpenAtOffset", testOpenAtOffset},
		{"Overwrite", testOverwrite},
		{"ChecksumMismatch", testChecksumMismatch},
		{"FailingReader", testFailingReader},
		{"CancelledBeforePut", testCancelledBeforePut},
		{"CancelledDuringPut", testCancelledDuringPut},
		{"CancelledContext", testCancelledContext},
		{"Delete", testDelete},
		{"DeleteThenPutParent", testDeleteThenPutParent},
		{"List", testList},
		{"ListStops", testListStops},
		{"MAASKeys", testMAASKeys},
		{"ConcurrentPutsSameKey", testConcurrentPutsSameKey},
		{"ConcurrentPutsManyKeys", testConcurrentPutsManyKeys},
		{"LargeStreaming", testLarge},
		{"Copier", testCopier},
		{"InvalidKeys", testInvalidKeys},
		{"ErrorNamesKey", testErrorNamesKey},
		{"ETag", testETag},
		{"Swapper", testSwapper},
		{"SwapperRace", testSwapperRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			tc.fn(t, s)
		})
	}
}

// ---- helpers ----

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func put(t *testing.T, s store.Target, key string, data []byte) store.Info {
	t.Helper()
	info, err := s.Put(t.Context(), key, bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: sum(data)})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// checkInfo compares what a store said about key with what was written. wantSHA is required
// unless listing is true, where "" is allowed (List fills SHA256 only when cheap).
func checkInfo(t *testing.T, what string, info store.Info, key string, data []byte, listing bool) {
	t.Helper()
	if info.Key != key {
		t.Errorf("%s: Key = %q, want %q", what, info.Key, key)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("%s(%q): Size = %d, want %d", what, key, info.Size, len(data))
	}
	want := sum(data)
	if info.SHA256 != want && !(listing && info.SHA256 == "") {
		t.Errorf("%s(%q): SHA256 = %q, want %q", what, key, info.SHA256, want)
	}
	if info.ModTime.IsZero() {
		t.Errorf("%s(%q): ModTime is zero", what, key)
	}
}

// checkObject checks Stat and Open of key against data.
func checkObject(t *testing.T, s store.Target, key string, data []byte) {
	t.Helper()
	info, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	checkInfo(t, "Stat", info, key, data, false)
	got, err := store.ReadAll(t.Context(), s, key, 0)
	if err != nil {
		t.Fatalf("ReadAll(%q): %v", key, err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("content of %q: got %d bytes %.40q, want %d bytes %.40q", key, len(got), got, len(data), data)
	}
}

// checkMissing checks that Stat and Open of key fail with ErrNotExist and name the key.
func checkMissing(t *testing.T, s store.Target, key string) {
	t.Helper()
	_, err := s.Stat(t.Context(), key)
	if !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat(%q) = %v, want an error matching store.ErrNotExist", key, err)
	} else if !strings.Contains(err.Error(), key) {
		t.Errorf("Stat(%q) error %q does not name the key", key, err)
	}
	rc, err := s.Open(t.Context(), key, 0)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Open(%q) = %v, want an error matching store.ErrNotExist", key, err)
	} else if !strings.Contains(err.Error(), key) {
		t.Errorf("Open(%q) error %q does not name the key", key, err)
	}
}

func listKeys(t *testing.T, s store.Target, prefix string) []string {
	t.Helper()
	var keys []string
	err := s.List(t.Context(), prefix, func(info store.Info) error {
		keys = append(keys, info.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

// checkKeys checks that List("") shows exactly want (in lexical order): no leftover from a
// failed write, no internal file.
func checkKeys(t *testing.T, s store.Target, want ...string) {
	t.Helper()
	got := listKeys(t, s, "")
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("List(\"\") = %q, want %q", got, want)
	}
}

// randReader yields n deterministic pseudo-random bytes for seed.
func randReader(seed byte, n int64) io.Reader {
	var s [32]byte
	s[0] = seed
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func randBytes(seed byte, n int) []byte {
	data, err := io.ReadAll(randReader(seed, int64(n)))
	if err != nil {
		panic(err)
	}
	return data
}

// errAfter yields data then fails with err instead of io.EOF.
type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		err = e.err
	}
	return n, err
}

// cancelAfter yields the bytes of r and calls cancel once more than n bytes have passed; it goes
// on yielding data, so only the store's own context handling can stop the write.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n < 0 {
		c.cancel()
	}
	return n, err
}

// ---- subtests ----

func testMissingKey(t *testing.T, s store.Target) {
	checkMissing(t, s, "missing/object.json")
	checkMissing(t, s, "missing")
	put(t, s, "present/object", []byte("x"))
	checkMissing(t, s, "present/object2")
	checkMissing(t, s, "present/objec")
	checkMissing(t, s, "present/object/below")
}

func testPrefixIsNotAnObject(t *testing.T, s store.Target) {
	put(t, s, "dir/sub/file", []byte("content"))
	checkMissing(t, s, "dir")
	checkMissing(t, s, "dir/sub")
	checkKeys(t, s, "dir/sub/file")
}

func testRoundTrip(t *testing.T, s store.Target) {
	key := "streams/v1/index.json"
	data := []byte(`{"format":"index:1.0","index":{}}` + "\n")
	info, err := s.Put(t.Context(), key, bytes.NewReader(data), store.PutOptions{
		Size: int64(len(data)), SHA256: sum(data),
		ContentType: "application/json", CacheControl: "max-age=60",
	})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	checkInfo(t, "Put", info, key, data, false)
	checkObject(t, s, key, data)

	var listed []store.Info
	if err := s.List(t.Context(), "", func(i store.Info) error { listed = append(listed, i); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(listed) != 1 {
		t.Fatalf("List returned %d objects, want 1: %+v", len(listed), listed)
	}
	checkInfo(t, "List", listed[0], key, data, true)
}

func testRoundTripWithoutSHA(t *testing.T, s store.Target) {
	key := "a/b"
	data := []byte("no expected sha256 given: the store computes it anyway")
	info, err := s.Put(t.Context(), key, bytes.NewReader(data), store.PutOptions{Size: int64(len(data))})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	checkInfo(t, "Put", info, key, data, false)
	checkObject(t, s, key, data)
}

func testEmptyObject(t *testing.T, s store.Target) {
	key := "empty"
	info, err := s.Put(t.Context(), key, bytes.NewReader(nil), store.PutOptions{Size: 0, SHA256: sum(nil)})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	checkInfo(t, "Put", info, key, nil, false)
	checkObject(t, s, key, []byte{})
	checkKeys(t, s, key)
}

func testSizeUnknown(t *testing.T, s store.Target) {
	key := "streams/v1/index.sjson"
	data := []byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{}\n")
	info, err := s.Put(t.Context(), key, bytes.NewReader(data), store.PutOptions{Size: -1})
	if err != nil {
		t.Fatalf("Put with Size -1: %v", err)
	}
	checkInfo(t, "Put", info, key, data, false)
	checkObject(t, s, key, data)

	// Size unknown but sha256 given and wrong.
	bad := []byte("other content")
	_, err = s.Put(t.Context(), "other", bytes.NewReader(bad), store.PutOptions{Size: -1, SHA256: sum(data)})
	if !errors.Is(err, store.ErrChecksum) {
		t.Errorf("Put with Size -1 and a wrong sha256 = %v, want store.ErrChecksum", err)
	}
	checkMissing(t, s, "other")
	checkKeys(t, s, key)
}

func testPartialReads(t *testing.T, s store.Target) {
	data := randBytes(1, 10000)
	readers := map[string]func() io.Reader{
		"OneByteReader": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"HalfReader":    func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		"DataErrReader": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
	}
	var keys []string
	for name, r := range readers {
		for _, size := range []int64{int64(len(data)), -1} {
			key := fmt.Sprintf("partial/%s/%d", name, size)
			keys = append(keys, key)
			info, err := s.Put(t.Context(), key, r(), store.PutOptions{Size: size, SHA256: sum(data)})
			if err != nil {
				t.Fatalf("Put(%q): %v", key, err)
			}
			checkInfo(t, "Put", info, key, data, false)
			checkObject(t, s, key, data)
		}
	}
	checkKeys(t, s, keys...)
}

func testOpenAtOffset(t *testing.T, s store.Target) {
	key := "pool/file.tar.xz"
	data := randBytes(2, 100000)
	put(t, s, key, data)
	for _, off := range []int64{0, 1, 4096, 99999, 100000} {
		rc, err := s.Open(t.Context(), key, off)
		if err != nil {
			t.Errorf("Open(%q, %d): %v", key, off, err)
			continue
		}
		if sz, ok := rc.(store.Sizer); ok && sz.Size() >= 0 && sz.Size() != int64(len(data))-off {
			t.Errorf("Open(%q, %d): Size() = %d, want %d", key, off, sz.Size(), int64(len(data))-off)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Errorf("reading %q from %d: %v", key, off, err)
			continue
		}
		if !bytes.Equal(got, data[off:]) {
			t.Errorf("Open(%q, %d) read %d bytes, want the last %d bytes of the object", key, off, len(got), len(data[off:]))
		}
	}
}

func testOverwrite(t *testing.T, s store.Target) {
	key := "streams/v1/com.ubuntu.maas:stable:v3:download.json"
	first := randBytes(3, 5000)
	second := []byte("shorter replacement")
	put(t, s, key, first)
	info := put(t, s, key, second)
	checkInfo(t, "Put (overwrite)", info, key, second, false)
	checkObject(t, s, key, second)
	third := randBytes(4, 9000)
	put(t, s, key, third)
	checkObject(t, s, key, third)
	checkKeys(t, s, key)
}

func testChecksumMismatch(t *testing.T, s store.Target) {
	data := []byte("the real content of the object")
	other := []byte("something else entirely")
	cases := []struct {
		name string
		data []byte
		opts store.PutOptions
	}{
		{"ShortReader", data[:10], store.PutOptions{Size: int64(len(data)), SHA256: sum(data)}},
		{"LongReader", data, store.PutOptions{Size: 10, SHA256: sum(data[:10])}},
		{"ShortReaderNoSHA", data[:10], store.PutOptions{Size: int64(len(data))}},
		{"LongReaderNoSHA", data, store.PutOptions{Size: 10}},
		{"WrongSHA256", data, store.PutOptions{Size: int64(len(data)), SHA256: sum(other)}},
		{"WrongSHA256SizeUnknown", data, store.PutOptions{Size: -1, SHA256: sum(other)}},
		{"EmptyReader", nil, store.PutOptions{Size: 5}},
	}
	previous := []byte("previous version, must survive")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fresh, kept := "fresh/"+tc.name, "kept/"+tc.name
			put(t, s, kept, previous)
			for _, key := range []string{fresh, kept} {
				_, err := s.Put(t.Context(), key, bytes.NewReader(tc.data), tc.opts)
				if !errors.Is(err, store.ErrChecksum) {
					t.Errorf("Put(%q) = %v, want an error matching store.ErrChecksum", key, err)
				} else if !strings.Contains(err.Error(), key) {
					t.Errorf("Put(%q) error %q does not name the key", key, err)
				}
			}
			checkMissing(t, s, fresh)
			checkObject(t, s, kept, previous)
			if keys := listKeys(t, s, "fresh/"); len(keys) != 0 {
				t.Errorf("List(\"fresh/\") after failed puts = %q, want nothing", keys)
			}
		})
	}
}

func testFailingReader(t *testing.T, s store.Target) {
	errBoom := errors.New("injected read failure")
	big := randBytes(5, 3<<20)
	small := []byte("a metadata file that fails to arrive")
	cases := []struct {
		name    string
		r       func() io.Reader
		size    int64
		wantErr error
	}{
		{"ErrReader", func() io.Reader { return iotest.ErrReader(errBoom) }, 100, errBoom},
		{"ErrAfterSomeBytes", func() io.Reader { return &errAfter{bytes.NewReader(big[:1<<20]), errBoom} }, int64(len(big)), errBoom},
		{"ErrAfterAllBytes", func() io.Reader { return &errAfter{bytes.NewReader(big), errBoom} }, int64(len(big)), errBoom},
		{"ErrAfterSomeBytesSizeUnknown", func() io.Reader { return &errAfter{bytes.NewReader(small[:10]), errBoom} }, -1, errBoom},
		{"TimeoutReader", func() io.Reader { return iotest.TimeoutReader(bytes.NewReader(big)) }, int64(len(big)), iotest.ErrTimeout},
	}
	previous := []byte("previous version, must survive")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fresh, kept := "fresh/"+tc.name, "kept/"+tc.name
			put(t, s, kept, previous)
			for _, key := range []string{fresh, kept} {
				_, err := s.Put(t.Context(), key, tc.r(), store.PutOptions{Size: tc.size})
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Put(%q) = %v, want an error wrapping %v", key, err, tc.wantErr)
				}
			}
			checkMissing(t, s, fresh)
			checkObject(t, s, kept, previous)
			if keys := listKeys(t, s, "fresh/"); len(keys) != 0 {
				t.Errorf("List(\"fresh/\") after failed puts = %q, want nothing", keys)
			}
		})
	}
}

func testCancelledBeforePut(t *testing.T, s store.Target) {
	data := []byte("never written")
	previous := []byte("previous")
	put(t, s, "kept", previous)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, key := range []string{"fresh", "kept"} {
		_, err := s.Put(ctx, key, bytes.NewReader(data), store.PutOptions{Size: int64(len(data))})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put(%q) with a cancelled context = %v, want context.Canceled", key, err)
		}
	}
	checkMissing(t, s, "fresh")
	checkObject(t, s, "kept", previous)
	checkKeys(t, s, "kept")
}

func testCancelledDuringPut(t *testing.T, s store.Target) {
	const size = 8 << 20
	previous := []byte("previous")
	put(t, s, "kept", previous)
	for _, key := range []string{"fresh", "kept"} {
		ctx, cancel := context.WithCancel(t.Context())
		r := &cancelAfter{r: randReader(6, size), n: 1 << 20, cancel: cancel}
		_, err := s.Put(ctx, key, r, store.PutOptions{Size: size})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put(%q) cancelled half way = %v, want context.Canceled", key, err)
		}
	}
	checkMissing(t, s, "fresh")
	checkObject(t, s, "kept", previous)
	checkKeys(t, s, "kept")
}

func testCancelledContext(t *testing.T, s store.Target) {
	data := []byte("present")
	put(t, s, "present", data)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Stat(ctx, "present"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with a cancelled context = %v, want context.Canceled", err)
	}
	if rc, err := s.Open(ctx, "present", 0); !errors.Is(err, context.Canceled) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Open with a cancelled context = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "present"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context = %v, want context.Canceled", err)
	}
	checkObject(t, s, "present", data)
}

func testDelete(t *testing.T, s store.Target) {
	put(t, s, "a/b/c", []byte("c"))
	put(t, s, "a/b/d", []byte("d"))
	if err := s.Delete(t.Context(), "a/b/c"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkMissing(t, s, "a/b/c")
	checkObject(t, s, "a/b/d", []byte("d"))
	checkKeys(t, s, "a/b/d")
	if err := s.Delete(t.Context(), "a/b/c"); err != nil {
		t.Errorf("Delete of a deleted object = %v, want nil", err)
	}
	if err := s.Delete(t.Context(), "never/existed"); err != nil {
		t.Errorf("Delete of a missing object = %v, want nil", err)
	}
	if err := s.Delete(t.Context(), "a/b/d"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkKeys(t, s)
	// A key can be written again after it was deleted.
	put(t, s, "a/b/c", []byte("again"))
	checkObject(t, s, "a/b/c", []byte("again"))
}

func testDeleteThenPutParent(t *testing.T, s store.Target) {
	// Deleting the only object below a prefix leaves nothing behind that stops the prefix
	// from becoming an object itself (a directory store removes emptied directories).
	put(t, s, "x/y/z", []byte("deep"))
	if err := s.Delete(t.Context(), "x/y/z"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	put(t, s, "x/y", []byte("now a file"))
	checkObject(t, s, "x/y", []byte("now a file"))
	checkKeys(t, s, "x/y")
}

func testList(t *testing.T, s store.Target) {
	// "a-b" and "a.c" sort before "a/…" and "a0" after it: a store walking directories by name
	// would get this wrong.
	keys := []string{"a/b/c", "a/b/d", "a/bc", "a/c", "a-b", "a.c", "a0", "ab", "b", "bb/a/a/a/a", "c~d+e"}
	contents := map[string][]byte{}
	for i, k := range slices.Backward(keys) {
		contents[k] = randBytes(byte(10+i), 10+i)
		put(t, s, k, contents[k])
	}
	sorted := slices.Sorted(slices.Values(keys))
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"a/", []string{"a/b/c", "a/b/d", "a/bc", "a/c"}},
		{"a/b", []string{"a/b/c", "a/b/d", "a/bc"}},
		{"a/b/", []string{"a/b/c", "a/b/d"}},
		{"a", []string{"a-b", "a.c", "a/b/c", "a/b/d", "a/bc", "a/c", "a0", "ab"}},
		{"a/b/c", []string{"a/b/c"}},
		{"b", []string{"b", "bb/a/a/a/a"}},
		{"b/", nil},
		{"bb/", []string{"bb/a/a/a/a"}},
		{"bb/a/a", []string{"bb/a/a/a/a"}},
		{"c~", []string{"c~d+e"}},
		{"zzz", nil},
		{"a/b/c/", nil},
		{"a/z", nil},
	} {
		var got []string
		err := s.List(t.Context(), tc.prefix, func(info store.Info) error {
			got = append(got, info.Key)
			if data, ok := contents[info.Key]; ok {
				checkInfo(t, "List", info, info.Key, data, true)
			}
			return nil
		})
		if err != nil {
			t.Errorf("List(%q): %v", tc.prefix, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func testListStops(t *testing.T, s store.Target) {
	for _, k := range []string{"k/1", "k/2", "k/3", "k/4"} {
		put(t, s, k, []byte(k))
	}
	errStop := errors.New("stop here")
	var seen []string
	err := s.List(t.Context(), "", func(info store.Info) error {
		seen = append(seen, info.Key)
		if len(seen) == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Errorf("List = %v, want the error returned by fn", err)
	}
	if want := []string{"k/1", "k/2"}; !slices.Equal(seen, want) {
		t.Errorf("List called fn for %q, want %q and then stop", seen, want)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = s.List(ctx, "", func(store.Info) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context = %v, want context.Canceled", err)
	}
}

func testMAASKeys(t *testing.T, s store.Target) {
	keys := []string{
		"streams/v1/index.sjson",
		"streams/v1/com.ubuntu.maas:stable:v3:download.sjson",
		"streams/v1/com.ubuntu.maas:stable:1:bootloader-download.json.gpg",
		"noble/amd64/20250718/squashfs",
		"noble/amd64/20250718/ga-24.04/generic/boot-initrd",
		"bootloaders/uefi/amd64/20210819.0/grub-efi-signed.tar.xz",
		"centos/amd64/generic/8/20210819_01/root-tgz",
		"pool/main/g/grub2-signed/grub-efi-amd64-signed_1.187.6+2.06-2ubuntu14.4_amd64.deb",
		"lxd/jammy~cloud/rootfs=squashfs,v1@2025",
	}
	for i, k := range keys {
		data := []byte(fmt.Sprintf("content %d of %s", i, k))
		put(t, s, k, data)
		checkObject(t, s, k, data)
	}
	checkKeys(t, s, keys...)
	for _, k := range keys {
		got := listKeys(t, s, k)
		if !slices.Equal(got, []string{k}) {
			t.Errorf("List(%q) = %q, want just that key", k, got)
		}
	}
	if err := s.Delete(t.Context(), keys[1]); err != nil {
		t.Fatalf("Delete(%q): %v", keys[1], err)
	}
	checkMissing(t, s, keys[1])
}

func testConcurrentPutsSameKey(t *testing.T, s store.Target) {
	const n = 8
	key := "streams/v1/index.json"
	versions := make([][]byte, n)
	for i := range versions {
		versions[i] = randBytes(byte(20+i), 100000+i*1000)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			data := versions[i]
			_, errs[i] = s.Put(t.Context(), key, iotest.HalfReader(bytes.NewReader(data)), store.PutOptions{Size: int64(len(data)), SHA256: sum(data)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Put #%d: %v", i, err)
		}
	}
	got, err := store.ReadAll(t.Context(), s, key, 0)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	i := slices.IndexFunc(versions, func(v []byte) bool { return bytes.Equal(v, got) })
	if i < 0 {
		t.Fatalf("after concurrent puts the object (%d bytes) is none of the versions written", len(got))
	}
	checkObject(t, s, key, versions[i])
	checkKeys(t, s, key)
}

func testConcurrentPutsManyKeys(t *testing.T, s store.Target) {
	const n = 16
	var wg sync.WaitGroup
	keys := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		keys[i] = fmt.Sprintf("shared/dir/%02d", i)
		wg.Go(func() {
			data := []byte(keys[i])
			_, errs[i] = s.Put(t.Context(), keys[i], bytes.NewReader(data), store.PutOptions{Size: int64(len(data))})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put(%q): %v", keys[i], err)
		}
	}
	checkKeys(t, s, keys...)
}

func testLarge(t *testing.T, s store.Target) {
	size := LargeSize
	key := "noble/amd64/20250718/squashfs"
	h := sha256.New()
	if _, err := io.Copy(h, randReader(7, size)); err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil))

	info, err := s.Put(t.Context(), key, randReader(7, size), store.PutOptions{Size: size, SHA256: want})
	if err != nil {
		t.Fatalf("Put of %d bytes: %v", size, err)
	}
	if info.Size != size || info.SHA256 != want {
		t.Errorf("Put returned size %d sha256 %s, want %d %s", info.Size, info.SHA256, size, want)
	}
	st, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.Size != size || st.SHA256 != want {
		t.Errorf("Stat returned size %d sha256 %s, want %d %s", st.Size, st.SHA256, size, want)
	}

	readHash := func(off int64) (string, int64) {
		t.Helper()
		rc, err := s.Open(t.Context(), key, off)
		if err != nil {
			t.Fatalf("Open(%q, %d): %v", key, off, err)
		}
		defer rc.Close()
		h := sha256.New()
		n, err := io.Copy(h, rc)
		if err != nil {
			t.Fatalf("reading %q from %d: %v", key, off, err)
		}
		return hex.EncodeToString(h.Sum(nil)), n
	}
	if got, n := readHash(0); got != want || n != size {
		t.Errorf("read back %d bytes with sha256 %s, want %d bytes %s", n, got, size, want)
	}

	// Reading from an offset gives exactly the tail.
	off := size/2 + 12345
	tail := randReader(7, size)
	if _, err := io.CopyN(io.Discard, tail, off); err != nil {
		t.Fatal(err)
	}
	th := sha256.New()
	if _, err := io.Copy(th, tail); err != nil {
		t.Fatal(err)
	}
	if got, n := readHash(off); got != hex.EncodeToString(th.Sum(nil)) || n != size-off {
		t.Errorf("read from %d: %d bytes, wrong tail (sha256 %s)", off, n, got)
	}

	// A large write that turns out wrong at the very end leaves the good object in place.
	_, err = s.Put(t.Context(), key, randReader(8, size), store.PutOptions{Size: size, SHA256: want})
	if !errors.Is(err, store.ErrChecksum) {
		t.Errorf("Put of different content with the old sha256 = %v, want store.ErrChecksum", err)
	}
	if got, n := readHash(0); got != want || n != size {
		t.Errorf("after a failed overwrite: %d bytes with sha256 %s, want the previous object", n, got)
	}
	checkKeys(t, s, key)
}

func testCopier(t *testing.T, s store.Target) {
	c, ok := store.As[store.Copier](s)
	if !ok {
		t.Skipf("%T does not implement store.Copier", s)
	}
	src, dst := "noble/amd64/20250718/squashfs", "noble/amd64/20250801/squashfs"
	data := randBytes(9, 200000)
	put(t, s, src, data)
	info, err := c.Copy(t.Context(), dst, src, store.PutOptions{Size: int64(len(data)), SHA256: sum(data)})
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	checkInfo(t, "Copy", info, dst, data, false)
	checkObject(t, s, dst, data)
	checkObject(t, s, src, data)

	// Overwriting an existing destination.
	other := []byte("other")
	put(t, s, "other", other)
	if _, err := c.Copy(t.Context(), dst, "other", store.PutOptions{Size: -1}); err != nil {
		t.Fatalf("Copy over an existing key: %v", err)
	}
	checkObject(t, s, dst, other)

	// A missing source.
	_, err = c.Copy(t.Context(), "copy/of/nothing", "no/such/key", store.PutOptions{Size: -1})
	if !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Copy from a missing key = %v, want store.ErrNotExist", err)
	} else if !strings.Contains(err.Error(), "no/such/key") {
		t.Errorf("Copy from a missing key: error %q does not name the key", err)
	}
	checkMissing(t, s, "copy/of/nothing")
	checkKeys(t, s, src, dst, "other")
}

// testETag checks the version tag: given by every write, Stat and List alike for the same object,
// stable while the object is untouched, changed when it is replaced by other bytes of the same or
// another size, and the same through a copy's result and the copy's Stat.
func testETag(t *testing.T, s store.Target) {
	key := "noble/amd64/20250718/boot-kernel"
	etagOf := func(what string, info store.Info) string {
		t.Helper()
		if info.ETag == "" {
			t.Fatalf("%s(%q): ETag is empty", what, key)
		}
		return info.ETag
	}
	stat := func(k string) store.Info {
		t.Helper()
		info, err := s.Stat(t.Context(), k)
		if err != nil {
			t.Fatalf("Stat(%q): %v", k, err)
		}
		return info
	}
	listed := func(k string) store.Info {
		t.Helper()
		var found *store.Info
		err := s.List(t.Context(), k, func(info store.Info) error {
			if info.Key == k {
				found = &info
			}
			return nil
		})
		if err != nil || found == nil {
			t.Fatalf("List(%q): found %v, error %v", k, found != nil, err)
		}
		return *found
	}
	same := func(k string, written store.Info) string {
		t.Helper()
		w := etagOf("Put", written)
		if st := etagOf("Stat", stat(k)); st != w {
			t.Errorf("%s: Stat ETag %q, the write returned %q", k, st, w)
		}
		if l := etagOf("List", listed(k)); l != w {
			t.Errorf("%s: List ETag %q, the write returned %q", k, l, w)
		}
		if again := etagOf("Stat", stat(k)); again != w {
			t.Errorf("%s: a second Stat gave ETag %q, then %q", k, w, again)
		}
		return w
	}

	first := randBytes(21, 4096)
	e1 := same(key, put(t, s, key, first))

	sameSize := randBytes(22, 4096)
	e2 := same(key, put(t, s, key, sameSize))
	if e2 == e1 {
		t.Errorf("replaced by other bytes of the same size: ETag stayed %q", e1)
	}
	otherSize := randBytes(23, 777)
	e3 := same(key, put(t, s, key, otherSize))
	if e3 == e2 || e3 == e1 {
		t.Errorf("replaced by bytes of another size: ETag %q, before %q and %q", e3, e2, e1)
	}

	if c, ok := store.As[store.Copier](s); ok {
		dst := "noble/amd64/20250801/boot-kernel"
		put(t, s, dst, first)
		info, err := c.Copy(t.Context(), dst, key, store.PutOptions{Size: int64(len(otherSize)), SHA256: sum(otherSize)})
		if err != nil {
			t.Fatalf("Copy: %v", err)
		}
		same(dst, info)
	}
	// A large object (multipart on S3, with its sha256 recorded afterwards when not given
	// upfront) has one ETag too.
	large := "noble/amd64/20250718/squashfs"
	size := LargeSize
	info, err := s.Put(t.Context(), large, randReader(24, size), store.PutOptions{Size: size})
	if err != nil {
		t.Fatalf("Put of %d bytes: %v", size, err)
	}
	same(large, info)
}

func testSwapper(t *testing.T, s store.Target) {
	sw := store.Swapper(s)
	ctx := t.Context()
	key := ".ssmirror/state.json"
	if _, _, err := sw.ReadTagged(ctx, key, 0); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("ReadTagged of a missing key = %v, want store.ErrNotExist", err)
	}
	// A stale tag on a missing key fails.
	if _, err := sw.Swap(ctx, key, []byte("x"), "some-tag", store.PutOptions{}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("Swap with a tag of a missing key = %v, want store.ErrPrecondition", err)
	}
	checkMissing(t, s, key)

	// Create with "".
	v1 := []byte(`{"v":1}`)
	tag1, err := sw.Swap(ctx, key, v1, "", store.PutOptions{ContentType: "application/json"})
	if err != nil {
		t.Fatalf("Swap creating a new key: %v", err)
	}
	checkObject(t, s, key, v1)
	data, tag, err := sw.ReadTagged(ctx, key, 0)
	if err != nil || !bytes.Equal(data, v1) || tag != tag1 {
		t.Fatalf("ReadTagged = %q, %q, %v; want %q, %q (the tag Swap returned)", data, tag, err, v1, tag1)
	}
	if _, _, err := sw.ReadTagged(ctx, key, int64(len(v1)-1)); err == nil {
		t.Errorf("ReadTagged of %d bytes with a limit of %d succeeded", len(v1), len(v1)-1)
	}

	// Creating again fails and changes nothing.
	_, err = sw.Swap(ctx, key, []byte(`{"v":"other"}`), "", store.PutOptions{})
	if !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("Swap with \"\" over an existing key = %v, want store.ErrPrecondition", err)
	} else if !strings.Contains(err.Error(), key) {
		t.Errorf("Swap error %q does not name the key", err)
	}
	checkObject(t, s, key, v1)

	// Swap on the current tag works and gives a new tag.
	v2 := []byte(`{"v":2}`)
	tag2, err := sw.Swap(ctx, key, v2, tag1, store.PutOptions{})
	if err != nil {
		t.Fatalf("Swap on the current tag: %v", err)
	}
	if tag2 == tag1 || tag2 == "" {
		t.Errorf("Swap gave tag %q after %q", tag2, tag1)
	}
	checkObject(t, s, key, v2)

	// The old tag is stale now.
	if _, err := sw.Swap(ctx, key, []byte(`{"v":"stale"}`), tag1, store.PutOptions{}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("Swap on a stale tag = %v, want store.ErrPrecondition", err)
	}
	checkObject(t, s, key, v2)

	// A write by Put changes the tag too.
	put(t, s, key, []byte(`{"v":3}`))
	if _, err := sw.Swap(ctx, key, []byte(`{"v":"stale"}`), tag2, store.PutOptions{}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("Swap on the tag from before a Put = %v, want store.ErrPrecondition", err)
	}
	checkObject(t, s, key, []byte(`{"v":3}`))

	// Content that does not match opts is refused and leaves the object as it was.
	_, tag3, err := sw.ReadTagged(ctx, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Swap(ctx, key, []byte("bad"), tag3, store.PutOptions{SHA256: sum([]byte("good"))}); !errors.Is(err, store.ErrChecksum) {
		t.Errorf("Swap of content that does not match its sha256 = %v, want store.ErrChecksum", err)
	}
	checkObject(t, s, key, []byte(`{"v":3}`))

	// After a Delete the tag is stale, and "" creates again.
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Swap(ctx, key, v1, tag3, store.PutOptions{}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("Swap on the tag of a deleted object = %v, want store.ErrPrecondition", err)
	}
	checkMissing(t, s, key)
	if _, err := sw.Swap(ctx, key, v1, "", store.PutOptions{}); err != nil {
		t.Errorf("Swap creating a deleted key: %v", err)
	}
	checkKeys(t, s, key)
}

// testSwapperRace: racing swaps from one tag, and racing creations, each have exactly one winner.
func testSwapperRace(t *testing.T, s store.Target) {
	sw := store.Swapper(s)
	ctx := t.Context()
	const racers, rounds = 8, 4
	race := func(tag string, round int) []error {
		var wg sync.WaitGroup
		errs := make([]error, racers)
		for i := range racers {
			wg.Go(func() {
				data := []byte(fmt.Sprintf("round %d racer %d", round, i))
				_, errs[i] = sw.Swap(ctx, "lease", data, tag, store.PutOptions{})
			})
		}
		wg.Wait()
		return errs
	}
	tag := ""
	for round := range rounds {
		winners := 0
		for i, err := range race(tag, round) {
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, store.ErrPrecondition):
				t.Errorf("round %d: racing Swap #%d: %v", round, i, err)
			}
		}
		if winners != 1 {
			t.Errorf("round %d (from tag %q): %d racing Swaps succeeded, want exactly 1", round, tag, winners)
		}
		var err error
		if _, tag, err = sw.ReadTagged(ctx, "lease", 0); err != nil {
			t.Fatal(err)
		}
	}
	checkKeys(t, s, "lease")
}
