package storetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/store"
)

// badKeys are keys every operation of every backend must refuse with store.ErrInvalidKey,
// before touching anything.
var badKeys = []string{
	"",
	"/etc/passwd",
	"../outside",
	"a/../../outside",
	"a/./b",
	"a//b",
	"a/",
	`a\b`,
	"a\x00b",
	"a\nb",
}

// badPrefixes are List prefixes every backend must refuse ("" and "a/" are fine).
var badPrefixes = []string{"/abs", "../", "a/../", "a//", `a\`}

// checkInvalid checks that err refuses key: store.ErrInvalidKey, in a *store.Error naming key.
func checkInvalid(t *testing.T, what, key string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("%s(%q) = %v, want store.ErrInvalidKey", what, key, err)
		return
	}
	var se *store.Error
	if !errors.As(err, &se) {
		t.Errorf("%s(%q) = %v (%T), want a *store.Error", what, key, err, err)
	} else if se.Key != key {
		t.Errorf("%s(%q): store.Error.Key = %q", what, key, se.Key)
	}
}

// testInvalidKeys: every operation refuses every bad key with store.ErrInvalidKey and writes
// nothing, and List refuses bad prefixes.
func testInvalidKeys(t *testing.T, s store.Target) {
	ctx := t.Context()
	data := []byte("valid")
	put(t, s, "valid", data)
	checkSourceInvalid(t, s)
	for _, key := range badKeys {
		_, err := s.Put(ctx, key, bytes.NewReader(data), store.PutOptions{Size: int64(len(data))})
		checkInvalid(t, "Put", key, err)
		checkInvalid(t, "Delete", key, s.Delete(ctx, key))
		_, _, err = s.ReadTagged(ctx, key, 0)
		checkInvalid(t, "ReadTagged", key, err)
		_, err = s.Swap(ctx, key, data, "", store.PutOptions{})
		checkInvalid(t, "Swap", key, err)
		if c, ok := store.As[store.Copier](s); ok {
			_, err = c.Copy(ctx, key, "valid", store.PutOptions{Size: -1})
			checkInvalid(t, "Copy to", key, err)
			_, err = c.Copy(ctx, "copy", key, store.PutOptions{Size: -1})
			if !errors.Is(err, store.ErrInvalidKey) {
				t.Errorf("Copy from %q = %v, want store.ErrInvalidKey", key, err)
			}
		}
	}
	for _, prefix := range badPrefixes {
		called := false
		err := s.List(ctx, prefix, func(store.Info) error { called = true; return nil })
		checkInvalid(t, "List", prefix, err)
		if called {
			t.Errorf("List(%q) listed something", prefix)
		}
	}
	for _, prefix := range []string{"", "v", "valid", "a/"} {
		if err := s.List(ctx, prefix, func(store.Info) error { return nil }); err != nil {
			t.Errorf("List(%q): %v", prefix, err)
		}
	}
	checkKeys(t, s, "valid")
	checkObject(t, s, "valid", data)
}

// checkSourceInvalid checks the read operations (and OpenRange where the store has it) refuse
// every bad key.
func checkSourceInvalid(t *testing.T, s store.Source) {
	ctx := t.Context()
	for _, key := range badKeys {
		_, err := s.Stat(ctx, key)
		checkInvalid(t, "Stat", key, err)
		rc, err := s.Open(ctx, key, 0)
		if err == nil {
			rc.Close()
		}
		checkInvalid(t, "Open", key, err)
		if ro, ok := store.As[store.RangeOpener](s); ok {
			rc, err := ro.OpenRange(ctx, key, 0, 1)
			if err == nil {
				rc.Close()
			}
			checkInvalid(t, "OpenRange", key, err)
		}
	}
}

// testErrorNamesKey: a missing object is a *store.Error naming the operation and the key, and
// errors.Is sees store.ErrNotExist through it.
func testErrorNamesKey(t *testing.T, s store.Target) {
	checkErrorNamesKey(t, s, "no/such/object")
	ctx := t.Context()
	key := "no/such/object"
	_, _, err := s.ReadTagged(ctx, key, 0)
	checkStoreError(t, "ReadTagged", key, err)
}

func checkErrorNamesKey(t *testing.T, s store.Source, key string) {
	ctx := t.Context()
	_, err := s.Stat(ctx, key)
	checkStoreError(t, "Stat", key, err)
	rc, err := s.Open(ctx, key, 0)
	if err == nil {
		rc.Close()
	}
	checkStoreError(t, "Open", key, err)
	if ro, ok := store.As[store.RangeOpener](s); ok {
		rc, err := ro.OpenRange(ctx, key, 0, 1)
		if err == nil {
			rc.Close()
		}
		checkStoreError(t, "OpenRange", key, err)
	}
}

func checkStoreError(t *testing.T, what, key string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotExist) {
		t.Errorf("%s of a missing %q = %v, want store.ErrNotExist", what, key, err)
		return
	}
	var se *store.Error
	switch {
	case !errors.As(err, &se):
		t.Errorf("%s of a missing %q = %v (%T), want a *store.Error", what, key, err, err)
	case se.Key != key || se.Op == "":
		t.Errorf("%s of a missing %q: store.Error{Op: %q, Key: %q}", what, key, se.Op, se.Key)
	case !strings.HasPrefix(err.Error(), se.Op+" "+key+": "):
		t.Errorf("%s of a missing %q: message %q does not start with %q", what, key, err, se.Op+" "+key+": ")
	}
}

// SourceObjects are the objects RunSource expects the source it is given to hold.
var SourceObjects = map[string][]byte{
	"streams/v1/index.json":         []byte(`{"format":"index:1.0"}`),
	"jammy/amd64/20250718/squashfs": randBytes(31, 300000),
	"empty":                         {},
}

// RunSource runs the read side of the contract against a store.Source holding exactly
// SourceObjects (a read-only store is given them by its test: an HTTP server, say): reads,
// missing keys as *store.Error, invalid keys, and bounded ranges where the source is a
// store.RangeOpener.
func RunSource(t *testing.T, newSource func(t *testing.T) store.Source) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Source)
	}{
		{"Reads", testSourceReads},
		{"ErrorNamesKey", func(t *testing.T, s store.Source) { checkErrorNamesKey(t, s, "no/such/object") }},
		{"InvalidKeys", checkSourceInvalid},
		{"RangedReads", testRangedReads},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSource(t)
			if s == nil {
				t.Fatal("newSource returned nil")
			}
			tc.fn(t, s)
		})
	}
}

// Seed writes SourceObjects into a target, for RunSource on a writable backend.
func Seed(t *testing.T, s store.Target) store.Target {
	t.Helper()
	for key, data := range SourceObjects {
		put(t, s, key, data)
	}
	return s
}

func testSourceReads(t *testing.T, s store.Source) {
	for key, data := range SourceObjects {
		got, err := store.ReadAll(t.Context(), s, key, 0)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("ReadAll(%q) = %d bytes, %v; want %d bytes", key, len(got), err, len(data))
		}
		info, err := s.Stat(t.Context(), key)
		if err != nil || (info.Size != int64(len(data)) && info.Size != -1) {
			t.Errorf("Stat(%q) = %+v, %v; want size %d", key, info, err, len(data))
		}
	}
}

// testRangedReads: OpenRange yields exactly the bytes asked for, a zero length yields nothing,
// a range past the end fails, and a bad range is refused.
func testRangedReads(t *testing.T, s store.Source) {
	ro, ok := store.As[store.RangeOpener](s)
	if !ok {
		t.Skipf("%T is not a store.RangeOpener", s)
	}
	ctx := t.Context()
	key := "jammy/amd64/20250718/squashfs"
	data := SourceObjects[key]
	n := int64(len(data))
	for _, r := range [][2]int64{{0, n}, {0, 1}, {1, 100}, {n - 1, 1}, {n / 3, n / 3}, {7, 65536}, {n, 0}, {0, 0}} {
		got, err := readRange(ctx, ro, key, r[0], r[1])
		if err != nil {
			t.Errorf("OpenRange(%d, %d): %v", r[0], r[1], err)
			continue
		}
		if !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
			t.Errorf("OpenRange(%d, %d) gave %d bytes, not the %d of the object's range", r[0], r[1], len(got), r[1])
		}
	}
	// Ranges the object does not hold fail rather than return fewer bytes.
	for _, r := range [][2]int64{{n - 10, 20}, {n + 5, 10}} {
		if got, err := readRange(ctx, ro, key, r[0], r[1]); err == nil {
			t.Errorf("OpenRange(%d, %d) of a %d-byte object gave %d bytes and no error", r[0], r[1], n, len(got))
		}
	}
	for _, r := range [][2]int64{{-1, 10}, {0, -1}} {
		if rc, err := ro.OpenRange(ctx, key, r[0], r[1]); err == nil {
			rc.Close()
			t.Errorf("OpenRange(%d, %d) accepted", r[0], r[1])
		}
	}
}

func readRange(ctx context.Context, ro store.RangeOpener, key string, offset, length int64) ([]byte, error) {
	rc, err := ro.OpenRange(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
