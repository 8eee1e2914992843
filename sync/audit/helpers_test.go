package audit_test

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

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// The audit's tests build real mirrors with sync.Run from a generated signed stream served over
// loopback HTTP, then damage them; these helpers are the few of sync's test helpers they need.

func TestMain(m *testing.M) { os.Exit(testserver.RunMain(m)) }

// upstream is a generated signed stream served over real HTTP on loopback.
type upstream struct {
	stream  *streamtest.Stream
	src     store.Source
	keyring *sign.Keyring
}

func loadSigner(t testing.TB, name string) *sign.Signer { return testkeys.Signer(t, name) }

func newUpstream(t *testing.T, cfg streamtest.Config, signer *sign.Signer) *upstream {
	t.Helper()
	if signer == nil {
		signer = loadSigner(t, "test-signing-key.asc")
	}
	s, err := streamtest.Generate(cfg, signer)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	src, err := httpstore.New(srv.Client(), srv.URL+"/", httpstore.Options{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &upstream{stream: s, src: src, keyring: testkeys.LoadKeyring(t, testkeys.Keyring)}
}

func smallConfig() streamtest.Config { return streamtest.SmallConfig() }

func newTarget(t *testing.T) (string, *dirstore.Store) {
	t.Helper()
	dir := t.TempDir()
	dst, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return dir, dst
}

func mustParse(t *testing.T, args ...string) streams.Filters {
	t.Helper()
	f, err := streams.ParseFilters(args)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// run mirrors up into dst, checking upstream's signatures unless opts says otherwise.
func run(t *testing.T, up *upstream, dst store.Target, opts sync.Options) *sync.Report {
	t.Helper()
	if opts.Verification.Keyring == nil && !opts.Verification.NoVerify {
		opts.Verification.Keyring = up.keyring
	}
	rep, err := sync.Run(t.Context(), up.src, dst, opts)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return rep
}

// selected lists the distinct content paths of the newest version of every product some item of
// which passes the filters, computed from the generator's item list and the products files.
func selected(t *testing.T, s *streamtest.Stream, args ...string) []string {
	t.Helper()
	f := mustParse(t, args...)
	newest := map[string]string{}
	matchesAt := map[string]bool{}
	for _, it := range s.Items {
		if !f.Match(itemAttrs(t, s, it)) {
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

func itemAttrs(t *testing.T, s *streamtest.Stream, it streamtest.Item) map[string]string {
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

// hostileUpstream writes an unsigned stream into a directory: one products file "c" whose
// version "1" has the given items (name → path), each file's content its own path, with the
// hashes hashes names ("sha256", "md5", "sha512").
func hostileUpstream(t *testing.T, items map[string]string, hashes ...string) store.Source {
	t.Helper()
	dir := t.TempDir()
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
	for p, data := range files {
		full := filepath.Join(dir, p)
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

// flipped is data with every byte changed: the same size, other bytes.
func flipped(data []byte) []byte {
	out := make([]byte, len(data))
	for i, b := range data {
		out[i] = ^b
	}
	return out
}

type s3env struct {
	mc     *minio.Client
	bucket string
	dst    *s3store.Store
}

// newS3Target is a mirror target in a fresh bucket of a shared test server, under the prefix
// "maas/stable/".
func newS3Target(t *testing.T, kind testserver.Kind) *s3env {
	t.Helper()
	srv := testserver.Shared(t, kind)
	srv.IsolateAWSEnv(t)
	opts := s3store.Options{Endpoint: srv.Endpoint, Region: srv.Region, PartSize: s3store.MinPartSize, PartConcurrency: 2}
	client, err := s3store.NewClient(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t, t.Name())
	return &s3env{mc: srv.MinioClient(t), bucket: bucket, dst: s3store.New(client, bucket, "maas/stable/", opts)}
}
