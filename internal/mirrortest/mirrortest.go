// Package mirrortest is what the tests of sync and of sync/audit share to build real mirrors: a
// generated signed stream served over loopback HTTP, small hand-written streams in a directory,
// the selection a set of filters should make (computed from the generator, not by sync), and a
// run that fails the test on error.
package mirrortest

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// Upstream is a generated signed stream served over real HTTP on loopback.
type Upstream struct {
	Stream  *streamtest.Stream
	Server  *httptest.Server
	Src     store.Source
	Keyring *sign.Keyring // the test keyring, which verifies the default signer's signatures
}

// NewUpstream generates cfg's stream, signed by signer (nil: the test signing key), and serves
// it until the test ends.
func NewUpstream(t testing.TB, cfg streamtest.Config, signer *sign.Signer) *Upstream {
	t.Helper()
	if signer == nil {
		signer = testkeys.Signer(t, "test-signing-key.asc")
	}
	s, err := streamtest.Generate(cfg, signer)
	if err != nil {
		t.Fatal(err)
	}
	srv, src := Serve(t, s)
	return &Upstream{Stream: s, Server: srv, Src: src, Keyring: testkeys.LoadKeyring(t, testkeys.Keyring)}
}

// Serve serves s over loopback HTTP until the test ends, and opens it as a source.
func Serve(t testing.TB, s *streamtest.Stream) (*httptest.Server, store.Source) {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	src, err := httpstore.New(srv.Client(), srv.URL+"/", httpstore.Options{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return srv, src
}

// DirTarget is a new, empty directory target.
func DirTarget(t testing.TB) (string, *dirstore.Store) {
	t.Helper()
	dir := t.TempDir()
	dst, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return dir, dst
}

// MustParse parses filter arguments.
func MustParse(t testing.TB, args ...string) streams.Filters {
	t.Helper()
	f, err := streams.ParseFilters(args)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Run mirrors src into dst, checking signatures against keyring unless opts names a keyring or
// turns verification off, and fails the test on error.
func Run(t testing.TB, src store.Source, keyring *sign.Keyring, dst store.Target, opts sync.Options) *sync.Report {
	t.Helper()
	if opts.Verification.Keyring == nil && !opts.Verification.NoVerify {
		opts.Verification.Keyring = keyring
	}
	rep, err := sync.Run(t.Context(), src, dst, opts)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return rep
}

// Selected lists the distinct content paths of the newest version of every product some item
// of which passes the filters, computed from the generator's item list and the products files.
func Selected(t testing.TB, s *streamtest.Stream, args ...string) []string {
	t.Helper()
	f := MustParse(t, args...)
	newest := map[string]string{}
	matchesAt := map[string]bool{}
	for _, it := range s.Items {
		if !f.Match(ItemAttrs(t, s, it)) {
			continue
		}
		key := it.ContentID + " " + it.Product
		if it.Version > newest[key] {
			newest[key] = it.Version
		}
		matchesAt[key+" "+it.Version+" "+it.Name] = true
	}
	set := map[string]bool{}
	for _, it := range s.Items {
		key := it.ContentID + " " + it.Product
		if newest[key] == it.Version && matchesAt[key+" "+it.Version+" "+it.Name] {
			set[it.Path] = true
		}
	}
	var out []string
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// ItemAttrs gives an item's effective attributes, read through the streams package from the
// generated unsigned products file.
func ItemAttrs(t testing.TB, s *streamtest.Stream, it streamtest.Item) map[string]string {
	t.Helper()
	doc, err := streams.ParseProducts(s.Files[streamtest.ProductsPath(it.ContentID)])
	if err != nil {
		t.Fatal(err)
	}
	items, err := doc.Items()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range items {
		if x.Product == it.Product && x.Version == it.Version && x.Name == it.Name {
			return x.Attrs.Map()
		}
	}
	t.Fatalf("item %v not in its products file", it)
	return nil
}

// HostileUpstream writes an unsigned stream into a directory: one products file "c" whose
// version "1" has the given items (name → path), each file's content its own path, with the
// hashes hashes names ("sha256", "md5", "sha512"). Metadata is written last: an item may name
// a metadata path, whose upstream bytes are then the metadata.
func HostileUpstream(t testing.TB, items map[string]string, hashes ...string) store.Source {
	t.Helper()
	var entries []string
	files := map[string]string{}
	for name, p := range items {
		content := "content of " + p + "\n"
		files[p] = content
		e := fmt.Sprintf(`%q: {"ftype": %q, "path": %q, "size": %d`, name, name, p, len(content))
		for _, h := range hashes {
			var sum []byte
			switch h {
			case "sha256":
				s := sha256.Sum256([]byte(content))
				sum = s[:]
			case "md5":
				s := md5.Sum([]byte(content))
				sum = s[:]
			case "sha512":
				s := sha512.Sum512([]byte(content))
				sum = s[:]
			}
			e += fmt.Sprintf(`, %q: %q`, h, hex.EncodeToString(sum))
		}
		entries = append(entries, e+"}")
	}
	files["streams/v1/index.json"] = `{"format": "index:1.0", "updated": "Mon, 23 Nov 2026 10:00:00 +0000", "index": {"c": {"format": "products:1.0", "path": "streams/v1/c.json", "products": ["p"]}}}`
	files["streams/v1/c.json"] = `{"format": "products:1.0", "content_id": "c", "updated": "Mon, 23 Nov 2026 10:00:00 +0000", "products": {"p": {"arch": "amd64", "versions": {"1": {"items": {` +
		strings.Join(entries, ", ") + `}}}}}}`
	return DirSource(t, files)
}

// DirSource writes files (slash path → content) into a new directory and opens it as a source.
func DirSource(t testing.TB, files map[string]string) store.Source {
	t.Helper()
	dir := t.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// Flipped is data with every byte changed: the same size, other bytes.
func Flipped(data []byte) []byte {
	out := make([]byte, len(data))
	for i, b := range data {
		out[i] = ^b
	}
	return out
}
