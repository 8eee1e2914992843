package sync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ssmirror/ssmirror/internal/mirrortest"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// upstream is a generated signed stream served over real HTTP on loopback.
type upstream struct {
	stream  *streamtest.Stream
	server  *httptest.Server
	src     store.Source
	keyring *sign.Keyring
}

func loadSigner(t testing.TB, name string) *sign.Signer { return testkeys.Signer(t, name) }

func testKeyring(t testing.TB) *sign.Keyring { return testkeys.LoadKeyring(t, testkeys.Keyring) }

func newUpstream(t *testing.T, cfg streamtest.Config, signer *sign.Signer) *upstream {
	t.Helper()
	u := mirrortest.NewUpstream(t, cfg, signer)
	return &upstream{stream: u.Stream, server: u.Server, src: u.Src, keyring: u.Keyring}
}

func newTarget(t *testing.T) (string, *dirstore.Store) { t.Helper(); return mirrortest.DirTarget(t) }

func mustParse(t *testing.T, args ...string) streams.Filters {
	t.Helper()
	return mirrortest.MustParse(t, args...)
}

func run(t *testing.T, up *upstream, dst store.Target, opts sync.Options) *sync.Report {
	t.Helper()
	return mirrortest.Run(t, up.src, up.keyring, dst, opts)
}

func selected(t *testing.T, s *streamtest.Stream, args ...string) []string {
	t.Helper()
	return mirrortest.Selected(t, s, args...)
}

func smallConfig(versions ...string) streamtest.Config {
	cfg := streamtest.SmallConfig()
	if len(versions) > 0 {
		cfg.Versions = versions
	}
	return cfg
}

// tree reads every file under dir (relative slash paths → content), skipping the mirror's
// own state directory.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".ssmirror" {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func contentPaths(files map[string][]byte) []string {
	var out []string
	for p := range files {
		if !strings.HasPrefix(p, "streams/") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func union(a, b []string) []string {
	set := map[string]bool{}
	for _, s := range append(append([]string{}, a...), b...) {
		set[s] = true
	}
	var out []string
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// checkVerbatim checks every metadata file upstream offers is in the target byte for byte.
func checkVerbatim(t *testing.T, up *upstream, files map[string][]byte) {
	t.Helper()
	for p, want := range up.stream.Files {
		got, ok := files[p]
		if !ok {
			t.Errorf("metadata %s not published", p)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("metadata %s differs from upstream's", p)
		}
	}
}

func TestMAASRecipeIntoDirectory(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	first := []string{"arch=amd64", "release~(jammy|noble)"}
	second := []string{"os~(grub*|pxelinux)"}

	run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, first...), Max: 1}})
	afterFirst := tree(t, dir)
	if diff := cmp.Diff(selected(t, up.stream, first...), contentPaths(afterFirst)); diff != "" {
		t.Fatalf("after the first command (-want +got):\n%s", diff)
	}
	checkVerbatim(t, up, afterFirst)

	rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, second...), Max: 1}})
	if len(rep.Plan.Removed) != 0 || len(rep.Deleted) != 0 {
		t.Errorf("second command removed %v, deleted %v", rep.Plan.Removed, rep.Deleted)
	}
	files := tree(t, dir)
	want := union(selected(t, up.stream, first...), selected(t, up.stream, second...))
	if diff := cmp.Diff(want, contentPaths(files)); diff != "" {
		t.Errorf("after both commands (-want +got):\n%s", diff)
	}
	if len(selected(t, up.stream, second...)) == 0 {
		t.Fatal("the bootloader filter selects nothing: the fixture lost its bootloaders")
	}
	// Every content file is exactly what the catalogue lists.
	for _, it := range up.stream.Items {
		if data, ok := files[it.Path]; ok && (int64(len(data)) != it.Size) {
			t.Errorf("%s: %d bytes, catalogue says %d", it.Path, len(data), it.Size)
		}
	}
	checkVerbatim(t, up, files)
}

func TestUpToDateRunFetchesAndRewritesNothing(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}}
	run(t, up, dst, opts)
	before := mtimes(t, dir)
	up.stream.ResetRequests()

	rep := run(t, up, dst, opts)
	if n := up.stream.ContentRequests(); n != 0 {
		t.Errorf("up-to-date run made %d content requests", n)
	}
	if rep.Fetched+rep.Copied != 0 || len(rep.MetadataWritten) != 0 {
		t.Errorf("up-to-date run fetched %d, copied %d, wrote metadata %v", rep.Fetched, rep.Copied, rep.MetadataWritten)
	}
	after := mtimes(t, dir)
	// The lease object is written by every run that takes the lock (taken, renewed, released:
	// it is replaced by conditional writes, never deleted); nothing else may change.
	delete(before, sync.LockKey)
	delete(after, sync.LockKey)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("files rewritten (-before +after):\n%s", diff)
	}
}

func mtimes(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = info.ModTime()
		}
		return nil
	})
	return out
}

func TestNewVersionOldKeptForGracePeriod(t *testing.T) {
	dir, dst := newTarget(t)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	filters := mustParse(t, "release=jammy", "arch=amd64")

	old := newUpstream(t, smallConfig("20250701"), nil)
	run(t, old, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}, Hooks: sync.Hooks{Now: clock}})
	oldPaths := contentPaths(tree(t, dir))

	up := newUpstream(t, smallConfig("20250701", "20250718"), nil)
	now = now.Add(time.Hour)
	rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}, Publishing: sync.Publishing{GCGrace: 24 * time.Hour}, Hooks: sync.Hooks{Now: clock}})
	if rep.Fetched == 0 {
		t.Fatal("the new version was not fetched")
	}
	files := tree(t, dir)
	for _, p := range oldPaths {
		if _, ok := files[p]; !ok {
			t.Errorf("%s deleted within the grace period", p)
		}
	}
	if rep.PendingDeletion != len(oldPaths) {
		t.Errorf("pending deletion %d, want %d", rep.PendingDeletion, len(oldPaths))
	}
	checkVerbatim(t, up, files)

	// Still within the grace period: nothing goes.
	now = now.Add(23 * time.Hour)
	if rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}, Publishing: sync.Publishing{GCGrace: 24 * time.Hour}, Hooks: sync.Hooks{Now: clock}}); len(rep.Deleted) != 0 {
		t.Errorf("deleted %v before the grace period ended", rep.Deleted)
	}
	now = now.Add(2 * time.Hour)
	rep = run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}, Publishing: sync.Publishing{GCGrace: 24 * time.Hour}, Hooks: sync.Hooks{Now: clock}})
	if diff := cmp.Diff(oldPaths, rep.Deleted); diff != "" {
		t.Errorf("deleted after the grace period (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(selected(t, up.stream, "release=jammy", "arch=amd64"), contentPaths(tree(t, dir))); diff != "" {
		t.Errorf("after GC (-want +got):\n%s", diff)
	}
}

// TestBadContentPublishesNothing damages one file upstream in several ways: each run fails naming
// the path, and what a reader can reach (metadata and every file) is unchanged.
func TestBadContentPublishesNothing(t *testing.T) {
	cases := map[string]func(io.Reader) io.Reader{
		"flipped byte": nil, // Corrupt
		"truncated":    func(r io.Reader) io.Reader { return io.LimitReader(r, 100) },
		"too long":     func(r io.Reader) io.Reader { return io.MultiReader(r, strings.NewReader("extra")) },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // its own target and upstreams; the time is the fetch retries' backoff
			dir, dst := newTarget(t)
			old := newUpstream(t, smallConfig("20250701"), nil)
			filters := mustParse(t, "release=noble", "arch=amd64")
			run(t, old, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}})
			before := tree(t, dir)

			up := newUpstream(t, smallConfig("20250701", "20250718"), nil)
			var victim string
			for _, it := range up.stream.Items {
				if it.Version == "20250718" && strings.HasPrefix(it.Path, "noble/amd64/") && strings.HasSuffix(it.Path, "squashfs") {
					victim = it.Path
				}
			}
			if damage == nil {
				if err := up.stream.Corrupt(victim); err != nil {
					t.Fatal(err)
				}
			} else {
				up.stream.SetOverride(victim, damage)
			}
			_, err := sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1, Verification: sync.Verification{Keyring: up.keyring}}})
			if err == nil {
				t.Fatal("the run succeeded with a damaged file")
			}
			if !strings.Contains(err.Error(), victim) {
				t.Errorf("error does not name %s: %v", victim, err)
			}
			if !errors.Is(err, store.ErrChecksum) {
				t.Errorf("error is not a checksum error: %v", err)
			}
			checkNothingPublished(t, dir, before, victim)
			// The next run, with upstream repaired, completes without fetching again what did arrive.
			up.stream.SetOverride(victim, nil)
			up.stream.ResetRequests()
			rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}})
			if rep.Fetched != 1 {
				t.Errorf("repaired run fetched %d files, want only the damaged one", rep.Fetched)
			}
			checkVerbatim(t, up, tree(t, dir))
		})
	}
}

func TestSignaturesRefused(t *testing.T) {
	t.Run("forged", func(t *testing.T) {
		up := newUpstream(t, smallConfig(), loadSigner(t, "other-signing-key.asc"))
		dir, dst := newTarget(t)
		_, err := sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: testKeyring(t)}}})
		if !errors.Is(err, sign.ErrUnknownKey) {
			t.Fatalf("want an unknown-key error, got %v", err)
		}
		if !strings.Contains(err.Error(), "index.sjson") {
			t.Errorf("error does not name the file: %v", err)
		}
		if files := tree(t, dir); len(files) != 0 {
			t.Errorf("files written: %v", contentPaths(files))
		}
	})
	t.Run("tampered products file", func(t *testing.T) {
		up := newUpstream(t, smallConfig(), nil)
		path := strings.TrimSuffix(streamtest.ProductsPath(streamtest.DownloadID), ".json") + ".sjson"
		up.stream.SetOverride(path, func(r io.Reader) io.Reader {
			b, _ := io.ReadAll(r)
			return bytes.NewReader(bytes.Replace(b, []byte(`"jammy"`), []byte(`"jammz"`), 1))
		})
		dir, dst := newTarget(t)
		_, err := sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: up.keyring}}})
		if !errors.Is(err, sign.ErrBadSignature) || !strings.Contains(err.Error(), path) {
			t.Fatalf("want a bad-signature error naming %s, got %v", path, err)
		}
		if files := tree(t, dir); len(files) != 0 {
			t.Errorf("files written: %v", contentPaths(files))
		}
	})
	t.Run("unsigned with keyring", func(t *testing.T) {
		s, err := streamtest.Generate(smallConfig(), nil) // unsigned: .json forms only
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		defer srv.Close()
		src, _ := httpstore.New(srv.Client(), srv.URL, httpstore.Options{})
		dir, dst := newTarget(t)
		_, err = sync.Run(t.Context(), src, dst, sync.Options{Selection: sync.Selection{StartPath: streamtest.IndexPath, Verification: sync.Verification{Keyring: testKeyring(t)}}})
		if !errors.Is(err, sign.ErrNoSignature) {
			t.Fatalf("want a no-signature error, got %v", err)
		}
		if files := tree(t, dir); len(files) != 0 {
			t.Errorf("files written: %v", contentPaths(files))
		}
		// Without a keyring an unsigned .json start path is read as it is.
		if _, err := sync.Run(t.Context(), src, dst, sync.Options{Selection: sync.Selection{StartPath: streamtest.IndexPath, Filters: mustParse(t, "release=noble", "arch=arm64"), Max: 1}}); err != nil {
			t.Fatalf("unsigned stream without a keyring: %v", err)
		}
	})
	t.Run("signed start path needs a keyring", func(t *testing.T) {
		up := newUpstream(t, smallConfig(), nil)
		_, dst := newTarget(t)
		_, err := sync.Run(t.Context(), up.src, dst, sync.Options{})
		if !errors.Is(err, sync.ErrNoKeyring) {
			t.Fatalf("want sync.ErrNoKeyring, got %v", err)
		}
	})
}

// TestPathTraversalRefused serves a validly signed catalogue whose item path climbs out of the
// mirror root: refused before anything is written.
func TestPathTraversalRefused(t *testing.T) {
	signer := loadSigner(t, "test-signing-key.asc")
	s, err := streamtest.Generate(smallConfig(), signer)
	if err != nil {
		t.Fatal(err)
	}
	products := streamtest.ProductsPath(streamtest.DownloadID)
	body := s.Files[products]
	var victim string
	for _, it := range s.Items {
		if it.ContentID == streamtest.DownloadID {
			victim = it.Path
			break
		}
	}
	evil := bytes.Replace(body, []byte(`"`+victim+`"`), []byte(`"../../etc/passwd"`), 1)
	if bytes.Equal(evil, body) {
		t.Fatal("could not plant the path")
	}
	var clear bytes.Buffer
	if err := signer.ClearSign(&clear, bytes.NewReader(evil)); err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(products, ".json")
	s.SetOverride(base+".sjson", func(io.Reader) io.Reader { return bytes.NewReader(clear.Bytes()) })
	s.SetHidden(products, true)
	s.SetHidden(products+".gpg", true)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	src, _ := httpstore.New(srv.Client(), srv.URL, httpstore.Options{})
	dir, dst := newTarget(t)
	_, err = sync.Run(t.Context(), src, dst, sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: testKeyring(t)}}})
	if err == nil || !strings.Contains(err.Error(), "../../etc/passwd") {
		t.Fatalf("want an error naming the path, got %v", err)
	}
	if files := tree(t, dir); len(files) != 0 {
		t.Errorf("files written: %v", contentPaths(files))
	}
}

// TestCurated publishes a rewritten catalogue signed with the operator's key: it lists exactly
// what is on disk and verifies with GnuPG's gpgv against the exported public keyring.
func TestCurated(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	operator := loadSigner(t, "other-signing-key.asc")
	filters := mustParse(t, "release=noble", "arch=amd64", "subarch~hwe")
	rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}, Publishing: sync.Publishing{Signer: operator}})
	if !rep.Curated {
		t.Fatal("not curated")
	}
	files := tree(t, dir)

	// Read the published catalogue back through the operator's keyring.
	var pub bytes.Buffer
	if err := operator.WritePublicKeyring(&pub); err != nil {
		t.Fatal(err)
	}
	kr, err := sign.ReadKeyring(bytes.NewReader(pub.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := sync.LoadCatalogue(t.Context(), mirror, "", sync.Verification{Keyring: kr}, 0, 2)
	if err != nil {
		t.Fatalf("reading the curated mirror with the operator's keyring: %v", err)
	}
	listed := map[string]bool{}
	for _, it := range cat.Items() {
		if it.Path == "" {
			continue
		}
		listed[it.Path] = true
		data, ok := files[it.Path]
		if !ok {
			t.Errorf("curated catalogue lists %s, which is not in the mirror", it.Path)
		} else if int64(len(data)) != it.Size {
			t.Errorf("%s: %d bytes, listed as %d", it.Path, len(data), it.Size)
		}
	}
	for _, p := range contentPaths(files) {
		if !listed[p] {
			t.Errorf("%s is in the mirror but not listed", p)
		}
	}
	if diff := cmp.Diff(selected(t, up.stream, "release=noble", "arch=amd64", "subarch~hwe"), contentPaths(files)); diff != "" {
		t.Errorf("curated content (-want +got):\n%s", diff)
	}

	// GnuPG agrees.
	gpgv, err := exec.LookPath("gpgv")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gpgv is needed in CI")
		}
		t.Skip("gpgv not installed")
	}
	keyring := filepath.Join(t.TempDir(), "operator.gpg")
	if err := os.WriteFile(keyring, pub.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for p := range files {
		switch {
		case strings.HasSuffix(p, ".sjson"):
			out, err := exec.Command(gpgv, "--keyring", keyring, filepath.Join(dir, p)).CombinedOutput()
			if err != nil {
				t.Errorf("gpgv %s: %v\n%s", p, err, out)
			}
			checked++
		case strings.HasSuffix(p, ".json.gpg"):
			data := filepath.Join(dir, strings.TrimSuffix(p, ".gpg"))
			out, err := exec.Command(gpgv, "--keyring", keyring, filepath.Join(dir, p), data).CombinedOutput()
			if err != nil {
				t.Errorf("gpgv %s: %v\n%s", p, err, out)
			}
			checked++
		}
	}
	if checked < 4 {
		t.Errorf("gpgv checked %d signatures; want the index and products files in both forms", checked)
	}

	// Curated and unchanged: a second run signs and writes nothing.
	rep = run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}, Publishing: sync.Publishing{Signer: operator}})
	if len(rep.MetadataWritten) != 0 {
		t.Errorf("unchanged curated mirror rewrote %v", rep.MetadataWritten)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=arm64"), Max: 1}, Publishing: sync.Publishing{DryRun: true}})
	if len(rep.Plan.Added) == 0 || len(rep.Plan.Fetch) == 0 {
		t.Fatalf("dry run planned nothing: %+v", rep.Plan)
	}
	if files := tree(t, dir); len(files) != 0 {
		t.Errorf("dry run wrote %v", files)
	}
	if _, err := os.Stat(filepath.Join(dir, sync.StateKey)); err == nil {
		t.Error("dry run wrote the state")
	}
}

// recorder is a store that remembers the order of writes.
type recorder struct {
	*dirstore.Store
	mu   gosync.Mutex
	puts []string
}

// Swap records the conditional writes (the state; the lease, which is not a stage, is left out).
func (r *recorder) Swap(ctx context.Context, key string, data []byte, tag string, opts store.PutOptions) (string, error) {
	newTag, err := r.Store.Swap(ctx, key, data, tag, opts)
	if err == nil && key != sync.LockKey {
		r.mu.Lock()
		r.puts = append(r.puts, key)
		r.mu.Unlock()
	}
	return newTag, err
}

func (r *recorder) Put(ctx context.Context, key string, rd io.Reader, opts store.PutOptions) (store.Info, error) {
	info, err := r.Store.Put(ctx, key, rd, opts)
	if err == nil {
		r.mu.Lock()
		r.puts = append(r.puts, key)
		r.mu.Unlock()
	}
	return info, err
}

// TestWriteOrder checks invariant 2: content, then products files, then the index, then state.
func TestWriteOrder(t *testing.T) {
	for _, curated := range []bool{false, true} {
		up := newUpstream(t, smallConfig(), nil)
		_, dir := newTarget(t)
		rec := &recorder{Store: dir}
		opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}, Tuning: sync.Tuning{Concurrency: 3}}
		if curated {
			opts.Signer = loadSigner(t, "other-signing-key.asc")
		}
		run(t, up, rec, opts)
		rank := func(key string) int {
			switch {
			case strings.HasPrefix(key, "streams/v1/index."):
				return 2
			case strings.HasPrefix(key, "streams/"):
				return 1
			case key == sync.FreshnessKey || key == sync.FreshnessSignedKey:
				return 3 // the freshness record, after the index
			case key == sync.StateKey:
				return 4
			}
			return 0
		}
		last := 0
		for _, key := range rec.puts {
			r := rank(key)
			if r < last {
				t.Fatalf("curated=%v: %s written after a later stage; order was %v", curated, key, rec.puts)
			}
			last = r
		}
		if last != 4 || len(rec.puts) < 10 {
			t.Errorf("curated=%v: unexpected writes %v", curated, rec.puts)
		}
	}
}

func TestNoItemDownloadPublishesMetadataOnly(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64")}, Publishing: sync.Publishing{NoItemDownload: true}})
	files := tree(t, dir)
	if got := contentPaths(files); len(got) != 0 {
		t.Errorf("content fetched: %v", got)
	}
	checkVerbatim(t, up, files)
	st, err := sync.LoadState(t.Context(), dst)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Held.Items(); n != 0 {
		t.Errorf("a metadata-only run records %d items as held", n)
	}
	// A later full run fetches the selection.
	rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}})
	if rep.Fetched == 0 {
		t.Error("the full run fetched nothing")
	}
}

// TestLeftoversSweptAfterAKilledRun: a temporary file under the target is left alone by an
// up-to-date run after a clean one (no walk of the whole tree), and removed by the run that takes
// over the lease of a run that never released it.
func TestLeftoversSweptAfterAKilledRun(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}}
	run(t, up, dst, opts)

	// Where a killed run's write of one of the target's files would have left it: in the
	// directory of that file (a run removes only temporary files in its own files' directories).
	leftover := filepath.Join(dir, filepath.FromSlash(path.Dir(selected(t, up.stream, "arch=amd64")[0])), dirstore.TempPrefix+"killed")
	if err := os.MkdirAll(filepath.Dir(leftover), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leftover, []byte("half a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(leftover, old, old)

	run(t, up, dst, opts)
	if _, err := os.Stat(leftover); err != nil {
		t.Fatalf("an up-to-date run after a clean one swept the tree: %v", err)
	}

	// A run killed while holding the lock leaves its lease behind.
	dead := sync.Lease{ID: "dead", Host: "gone", PID: 1, Started: old, Expires: old.Add(time.Minute)}
	data, _ := json.Marshal(dead)
	if _, err := store.PutBytes(t.Context(), dst, sync.LockKey, data, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, up, dst, opts)
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the run that took over a dead run's lease left its temporary file: %v", err)
	}
}

// checkNothingPublished checks the directory target after a failed run: the damaged file victim
// is not visible, every file that was there (metadata included) is unchanged, and no metadata
// appeared. It returns the tree, in which only new content files may have been added.
func checkNothingPublished(t *testing.T, dir string, before map[string][]byte, victim string) map[string][]byte {
	t.Helper()
	after := tree(t, dir)
	if _, ok := after[victim]; ok {
		t.Errorf("the damaged file %s is visible", victim)
	}
	for p, data := range before {
		if !bytes.Equal(after[p], data) {
			t.Errorf("%s changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok && strings.HasPrefix(p, "streams/") {
			t.Errorf("metadata %s appeared", p)
		}
	}
	return after
}
