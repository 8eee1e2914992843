package sync_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/sync"
)

// fixtureSource copies the committed fixture stream into a temporary directory without the
// named files, and opens it as a source.
func fixtureSource(t *testing.T, without ...string) *dirstore.Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "testdata", "stream"))); err != nil {
		t.Fatal(err)
	}
	for _, f := range without {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(f))); err != nil {
			t.Fatal(err)
		}
	}
	src, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// A source named by its root with no signed index (an LXD or Incus image server) is read from
// its unsigned index.json; a signed one still needs a keyring, and with a keyring the unsigned
// index must carry a good detached signature: nothing is downgraded.
func TestDefaultStartPathFallsBackToIndexJSON(t *testing.T) {
	ctx := t.Context()
	kr, err := sign.LoadKeyring(filepath.Join("..", "testdata", "keys", "test-keyring.gpg"))
	if err != nil {
		t.Fatal(err)
	}

	// No index.sjson, no keyring: index.json.
	cat, err := sync.LoadCatalogue(ctx, fixtureSource(t, "streams/v1/index.sjson"), "", sync.Verification{}, 0, 2)
	if err != nil {
		t.Fatalf("a source without index.sjson: %v", err)
	}
	if cat.StartPath != sync.UnsignedStartPath || len(cat.Products) == 0 {
		t.Errorf("started from %s with %d products files, want %s and some", cat.StartPath, len(cat.Products), sync.UnsignedStartPath)
	}

	// No index.sjson, a keyring: index.json verified with its detached signature.
	cat, err = sync.LoadCatalogue(ctx, fixtureSource(t, "streams/v1/index.sjson"), "", sync.Verification{Keyring: kr}, 0, 2)
	if err != nil || cat.StartPath != sync.UnsignedStartPath {
		t.Errorf("a source without index.sjson, with a keyring: %v", err)
	}

	// No index.sjson and no detached signature, a keyring: refused, not read unsigned.
	_, err = sync.LoadCatalogue(ctx, fixtureSource(t, "streams/v1/index.sjson", "streams/v1/index.json.gpg"), "", sync.Verification{Keyring: kr}, 0, 2)
	if err == nil {
		t.Error("an unsigned index was read although a keyring was given")
	}

	// A signed index and no keyring: still refused, naming what is missing.
	_, err = sync.LoadCatalogue(ctx, fixtureSource(t), "", sync.Verification{}, 0, 2)
	if !errors.Is(err, sync.ErrNoKeyring) {
		t.Errorf("a signed source without a keyring: %v, want ErrNoKeyring", err)
	}
}
