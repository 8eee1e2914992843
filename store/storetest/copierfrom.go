package storetest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/store"
)

// CopyLargeSize is the size in bytes of the object the CopierFrom "Large" subtest copies. S3
// suites lower the store's multipart-copy threshold below it so that the UploadPartCopy path is
// exercised too.
var CopyLargeSize int64 = 12 << 20

// RunCopierFrom runs the store.CopierFrom contract. newPair returns, on each call, a new, empty
// destination and a new, empty source that the destination can copy from (on the same service,
// with the same credentials: two buckets of one S3 server, two memory stores). The destination
// must implement store.CopierFrom (found with store.As).
func RunCopierFrom(t *testing.T, newPair func(t *testing.T) (dst, src store.Target)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c store.CopierFrom, dst, src store.Target)
	}{
		{"CanCopyFrom", testCanCopyFrom},
		{"RoundTrip", testCopyFromRoundTrip},
		{"WithoutExpectations", testCopyFromWithoutExpectations},
		{"Large", testCopyFromLarge},
		{"Overwrite", testCopyFromOverwrite},
		{"Mismatch", testCopyFromMismatch},
		{"MissingSource", testCopyFromMissing},
		{"InvalidKeys", testCopyFromInvalidKeys},
		{"CancelledContext", testCopyFromCancelled},
		{"OtherSource", testCopyFromOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst, src := newPair(t)
			if dst == nil || src == nil {
				t.Fatal("newPair returned nil")
			}
			c, ok := store.As[store.CopierFrom](dst)
			if !ok {
				t.Fatalf("%T does not implement store.CopierFrom", dst)
			}
			tc.fn(t, c, dst, src)
		})
	}
}

// wrapped is a store wrapper that gives back what it wraps (store.Unwrapper): abilities of the
// wrapped store, its identity as a copy source included, are still found through it.
type wrapped struct{ store.Target }

func (w wrapped) Unwrap() store.Source { return w.Target }

// opaque hides the store it embeds: no Unwrap, no ability beyond store.Target. No CopierFrom can
// copy from it on the server.
type opaque struct{ store.Target }

// checkCopyError checks that err is a *store.Error for a copy to dstKey matching want, and that
// its message names srcKey.
func checkCopyError(t *testing.T, what string, err error, want error, dstKey, srcKey string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s = %v, want an error matching %v", what, err, want)
		return
	}
	var se *store.Error
	if !errors.As(err, &se) {
		t.Errorf("%s = %v (%T), want a *store.Error", what, err, err)
	} else if se.Key != dstKey {
		t.Errorf("%s: store.Error.Key = %q, want the destination %q", what, se.Key, dstKey)
	}
	if srcKey != "" && !strings.Contains(err.Error(), srcKey) {
		t.Errorf("%s: error %q does not name the source key %q", what, err, srcKey)
	}
}

func testCanCopyFrom(t *testing.T, c store.CopierFrom, dst, src store.Target) {
	if !c.CanCopyFrom(src) {
		t.Errorf("CanCopyFrom(%s) = false, want true", describe(src))
	}
	if !c.CanCopyFrom(dst) {
		t.Errorf("CanCopyFrom(itself) = false, want true")
	}
	if !c.CanCopyFrom(wrapped{src}) {
		t.Errorf("CanCopyFrom(a wrapper of %s) = false, want true (found through Unwrap)", describe(src))
	}
	if c.CanCopyFrom(opaque{src}) {
		t.Errorf("CanCopyFrom(a store hiding %s) = true, want false", describe(src))
	}
}

func describe(s store.Source) string { return store.Describe(s) }

func testCopyFromRoundTrip(t *testing.T, c store.CopierFrom, dst, src store.Target) {
	srcKey, dstKey := "noble/amd64/20250718/squashfs", "site/b/noble/amd64/20250718/squashfs"
	data := randBytes(21, 300000)
	put(t, src, srcKey, data)
	info, err := c.CopyFrom(t.Context(), dstKey, src, srcKey, store.PutOptions{Size: int64(len(data)), SHA256: sum(data)})
	if err != nil {
		t.Fatalf("CopyFrom: %v", err)
	}
	checkInfo(t, "CopyFrom", info, dstKey, data, false)
	checkObject(t, dst, dstKey, data)
	if st, err := dst.Stat(t.Context(), dstKey); err == nil && st.ETag != info.ETag {
		t.Errorf("CopyFrom gave ETag %q, Stat %q", info.ETag, st.ETag)
	}
	checkObject(t, src, srcKey, data)
	checkKeys(t, dst, dstKey)
	checkKeys(t, src, srcKey)

	// The same through a wrapper of the source.
	info, err = c.CopyFrom(t.Context(), "via/wrapper", wrapped{src}, srcKey, store.PutOptions{Size: int64(len(data)), SHA256: sum(data)})
	if err != nil {
		t.Fatalf("CopyFrom a wrapped source: %v", err)
	}
	checkInfo(t, "CopyFrom a wrapped source", info, "via/wrapper", data, false)
	checkObject(t, dst, "via/wrapper", data)
}

// testCopyFromWithoutExpectations: with neither size nor sha256 given, the copy still carries the
// sha256 recorded on the source.
func testCopyFromWithoutExpectations(t *testing.T, c store.CopierFrom, dst, src store.Target) {
	data := []byte(`{"format":"products:1.0"}`)
	put(t, src, "streams/v1/products.json", data)
	info, err := c.CopyFrom(t.Context(), "streams/v1/products.json", src, "streams/v1/products.json", store.PutOptions{Size: -1})
	if err != nil {
		t.Fatalf("CopyFrom: %v", err)
	}
	checkInfo(t, "CopyFrom", info, "streams/v1/products.json", data, false)
	checkObject(t, dst, "streams/v1/products.json", data)
}

func testCopyFromLarge(t *testing.T, c store.CopierFrom, dst, src store.Target) {
	data := randBytes(22, int(CopyLargeSize)+12345)
	put(t, src, "large", data)
	info, err := c.CopyFrom(t.Context(), "copy/of/large", src, "large", store.PutOptions{Size: int64(len(data)), SHA256: sum(data)})
	if err != nil {
		t.Fatalf("CopyFrom of %d bytes: %v", len(data), err)
	}
	checkInfo(t, "CopyFrom", info, "copy/of/large", data, false)
	checkObject(t, dst, "copy/of/large", data)
	if st, err := dst.Stat(t.Context(), "copy/of/large"); err == nil && st.ETag != info.ETag {
		t.Errorf("CopyFrom gave ETag %q, Stat %q", info.ETag, st.ETag)
	}
}

func testCopyFromOverwrite(t *testing.T, c store.CopierFrom, dst, src store.Target) {
	old, data := []byte("the old object"), randBytes(23, 5000)
	put(t, dst, "key", old)
	put(t, src, "key", data)
	if _, err := c.CopyFrom(t.Context(), "key", src, "key", store.PutOptions{Size: int64(len(data)), SHA256: sum(data)}); err != nil {
		t.Fatalf("CopyFrom over an existing object: %v", err)
	}
	checkObject(t, dst, "key", data)
}

// testCopyFromMismatch: a source whose size or sha256 is not the expected one is not copied, and
// an object already at the destination key is left as it was.
func testCopyFromMismatch(t *testing.T, c store.CopierFrom, dst, src store.Target) {
	data, old := randBytes(24, 4000), []byte("what was there")
	put(t, src, "src", data)
	put(t, dst, "existing", old)
	for _, tc := range []struct {
		name string
		opts store.PutOptions
	}{
		{"Size", store.PutOptions{Size: int64(len(data)) + 1, SHA256: sum(data)}},
		{"SHA256", store.PutOptions{Size: int64(len(data)), SHA256: sum([]byte("other"))}},
		{"SHA256SizeUnknown", store.PutOptions{Size: -1, SHA256: sum([]byte("other"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CopyFrom(t.Context(), "new", src, "src", tc.opts)
			checkCopyError(t, "CopyFrom with a mismatch", err, store.ErrChecksum, "new", "src")
			checkMissing(t, dst, "new")
			_, err = c.CopyFrom(t.Context(), "existing", src, "src", tc.opts)
			checkCopyError(t, "CopyFrom with a mismatch over an object", err, store.ErrChecksum, "existing", "src")
			checkObject(t, dst, "existing", old)
		})
	}
	checkKeys(t, dst, "existing")
	checkObject(t, src, "src", data)
}

func testCopyFromMissing(t *testing.T, c store.CopierFrom, dst, src store.Target) {
	_, err := c.CopyFrom(t.Context(), "copy/of/nothing", src, "no/such/key", store.PutOptions{Size: -1})
	checkCopyError(t, "CopyFrom a missing key", err, store.ErrNotExist, "copy/of/nothing", "no/such/key")
	checkMissing(t, dst, "copy/of/nothing")
	checkKeys(t, dst)
}

func testCopyFromInvalidKeys(t *testing.T, c store.CopierFrom, dst, src store.Target) {
	data := []byte("valid")
	put(t, src, "valid", data)
	for _, key := range badKeys {
		_, err := c.CopyFrom(t.Context(), key, src, "valid", store.PutOptions{Size: -1})
		checkInvalid(t, "CopyFrom to", key, err)
		_, err = c.CopyFrom(t.Context(), "copy", src, key, store.PutOptions{Size: -1})
		if !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("CopyFrom from %q = %v, want store.ErrInvalidKey", key, err)
		}
	}
	checkKeys(t, dst)
}

func testCopyFromCancelled(t *testing.T, c store.CopierFrom, dst, src store.Target) {
	data := randBytes(25, 3000)
	put(t, src, "src", data)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.CopyFrom(ctx, "dst", src, "src", store.PutOptions{Size: int64(len(data)), SHA256: sum(data)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("CopyFrom with a cancelled context = %v, want context.Canceled", err)
	}
	checkMissing(t, dst, "dst")
	checkKeys(t, dst)
}

// testCopyFromOther: a source CanCopyFrom refuses (one whose identity is hidden) is not copied
// from, and nothing is written.
func testCopyFromOther(t *testing.T, c store.CopierFrom, dst, src store.Target) {
	data := randBytes(26, 3000)
	put(t, src, "src", data)
	_, err := c.CopyFrom(t.Context(), "dst", opaque{src}, "src", store.PutOptions{Size: int64(len(data)), SHA256: sum(data)})
	if err == nil {
		t.Error("CopyFrom a source CanCopyFrom refuses succeeded")
	} else if !strings.Contains(err.Error(), "src") {
		t.Errorf("CopyFrom a refused source: error %q does not name the source key", err)
	}
	checkMissing(t, dst, "dst")
	checkKeys(t, dst)
	if !bytes.Equal(mustRead(t, src, "src"), data) {
		t.Error("the source changed")
	}
}

func mustRead(t *testing.T, s store.Source, key string) []byte {
	t.Helper()
	b, err := store.ReadAll(t.Context(), s, key, 0)
	if err != nil {
		t.Fatalf("ReadAll(%q): %v", key, err)
	}
	return b
}
