package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/memstore"
)

// wrapper hides what it wraps (its methods are only Source's) but unwraps to it.
type wrapper struct{ store.Source }

func (w wrapper) Unwrap() store.Source { return w.Source }

// opaque hides what it wraps and does not unwrap.
type opaque struct{ store.Source }

// ranges is a source that reads ranges itself.
type ranges struct{ store.Source }

func (ranges) OpenRange(context.Context, string, int64, int64) (io.ReadCloser, error) {
	return nil, errors.New("not used")
}

func TestAs(t *testing.T) {
	mem := memstore.New()
	if c, ok := store.As[store.Copier](wrapper{wrapper{mem}}); !ok || c != store.Copier(mem) {
		t.Errorf("As[Copier] through two wrappers = %v, %v; want the memory store", c, ok)
	}
	if _, ok := store.As[store.Copier](opaque{mem}); ok {
		t.Error("As[Copier] found a Copier behind a wrapper without Unwrap")
	}
	if _, ok := store.As[store.RangeOpener](wrapper{mem}); ok {
		t.Error("As[RangeOpener] found one where there is none")
	}
	// The outermost store with the ability wins.
	r := ranges{wrapper{mem}}
	if got, ok := store.As[store.RangeOpener](wrapper{r}); !ok || got != store.RangeOpener(r) {
		t.Errorf("As[RangeOpener] = %v, %v; want the outer ranges store", got, ok)
	}
	if _, ok := store.As[store.Copier](nil); ok {
		t.Error("As on nil found something")
	}
	if got := store.Describe(wrapper{mem}); got != "memory" {
		t.Errorf("Describe through a wrapper = %q, want %q", got, "memory")
	}
}

func TestError(t *testing.T) {
	err := fmt.Errorf("loading: %w", &store.Error{Op: "open", Key: "streams/v1/index.json", Err: fmt.Errorf("gone: %w", store.ErrNotExist)})
	if got, want := err.Error(), "loading: open streams/v1/index.json: gone: file does not exist"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if !errors.Is(err, store.ErrNotExist) {
		t.Error("errors.Is does not see ErrNotExist through a *store.Error")
	}
	var se *store.Error
	if !errors.As(err, &se) || se.Key != "streams/v1/index.json" || se.Op != "open" {
		t.Errorf("errors.As gave %+v", se)
	}
	if store.NewError("put", "k", nil) != nil {
		t.Error("NewError of nil is not nil")
	}
	inner := &store.Error{Op: "put", Key: "k", Err: store.ErrChecksum}
	if got := store.NewError("swap", "k", inner); got != error(inner) {
		t.Errorf("NewError wrapped an error already naming its key: %v", got)
	}
	if got := store.NewError("copy", "other", inner); got.Error() != "copy other: put k: checksum mismatch" {
		t.Errorf("NewError for another key = %q", got)
	}
}

func TestValidKeyAndPrefix(t *testing.T) {
	for _, key := range []string{"", "/a", "a/../b", "a//b", "a/", `a\b`, "a\x00", "."} {
		if err := store.ValidKey(key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("ValidKey(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	for _, key := range []string{"a", "streams/v1/index.json", ".ssmirror/lock", "a..b/c"} {
		if err := store.ValidKey(key); err != nil {
			t.Errorf("ValidKey(%q) = %v", key, err)
		}
	}
	for _, p := range []string{"", "a", "a/", "streams/v1/", "streams/v1/ind"} {
		if err := store.ValidPrefix(p); err != nil {
			t.Errorf("ValidPrefix(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"/", "/a", "a//", "../", "a/./"} {
		if err := store.ValidPrefix(p); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("ValidPrefix(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
}
