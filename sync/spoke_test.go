package sync_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/internal/mirrortest"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/sync"
	"github.com/ssmirror/ssmirror/sync/audit"
)

// hubConfig is an upstream with a release the hub leaves out (focal).
func hubConfig(versions ...string) streamtest.Config {
	cfg := streamtest.SmallConfig()
	cfg.Releases = []string{"focal", "jammy", "noble"}
	if len(versions) > 0 {
		cfg.Versions = versions
	}
	return cfg
}

// serveDir serves a directory mirror over loopback HTTP, as a web server or CDN would, and
// opens it as a source; deny, when not nil, answers 403 to the paths it returns true for.
func serveDir(t *testing.T, dir string, deny func(string) bool) store.Source {
	t.Helper()
	fsrv := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if deny != nil && deny(r.URL.Path) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		fsrv.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	src, err := httpstore.New(srv.Client(), srv.URL+"/", httpstore.Options{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// hubSource opens the hub as a spoke reads it: a directory hub over HTTP, an S3 hub as a bucket.
func hubSource(t *testing.T, hub *targettest.Target) store.Source {
	if hub.Kind == targettest.Directory {
		return serveDir(t, hub.Dir, nil)
	}
	return hub.Store
}

func heldPaths(t *testing.T, dst store.Target) []string {
	t.Helper()
	st, err := sync.LoadState(t.Context(), dst)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for p := range st.Held.Paths() {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths
}

func checkConsistent(t *testing.T, dst store.Target, keyring *sign.Keyring) {
	t.Helper()
	vr, err := audit.Verify(t.Context(), dst, audit.VerifyOptions{Keyring: keyring, Deep: true})
	if err != nil {
		t.Fatalf("verify %s: %v", store.Describe(dst), err)
	}
	for _, p := range vr.Problems {
		t.Errorf("verify %s: %+v", store.Describe(dst), p)
	}
}

// A verbatim hub filtered to two releases publishes upstream's whole catalogue; a spoke whose
// selection is wider (every release of one arch) mirrors what the hub holds of it, says what it
// left out and the filter that says so, and converges: the rerun is up to date, and a hub run
// that adds a version reaches the spoke. Before, every spoke run failed on focal's files.
func TestSpokeWiderThanHubConverges(t *testing.T) {
	for _, mode := range []string{"verbatim", "curated"} {
		t.Run(mode, func(t *testing.T) {
			targettest.Each(t, []targettest.Kind{targettest.Directory, targettest.MinIO}, targettest.Options{}, func(t *testing.T, kind targettest.Kind) {
				up := newUpstream(t, hubConfig("20250701", "20250718"), nil)
				hub := targettest.New(t, kind, targettest.Options{})
				run(t, up, hub.Store, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "release~(jammy|noble)")}})

				spokeDir, spoke := newTarget(t)
				opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}}
				keyring := up.keyring
				if mode == "curated" {
					opts.Signer = loadSigner(t, "other-signing-key.asc")
					keyring = testkeys.LoadKeyring(t, testkeys.OtherKeyring)
				}
				src := hubSource(t, hub)
				rep := mirrortest.Run(t, src, up.keyring, spoke, opts)
				if !rep.Source.Record {
					t.Fatal("the spoke did not read the hub's record")
				}
				if len(rep.Source.LeftOut) == 0 {
					t.Fatal("nothing reported left out")
				}
				for _, k := range rep.Source.LeftOut {
					// focal's images, and the bootloaders (no release: the hub's filter left them out)
					if !strings.Contains(k.Product, ":20.04:") && !strings.Contains(k.ContentID, "bootloader") {
						t.Errorf("left out %s, which the hub holds", k)
					}
				}
				if rep.Source.Hint != "release~^(jammy|noble)$" {
					t.Errorf("hint %q, want release~^(jammy|noble)$", rep.Source.Hint)
				}
				want := selected(t, up.stream, "arch=amd64", "release~(jammy|noble)")
				got := heldPaths(t, spoke)
				if mode == "verbatim" && !slices.Equal(got, want) {
					t.Errorf("spoke holds %v\nwant %v", got, want)
				}
				for _, p := range want {
					if _, err := os.Stat(filepath.Join(spokeDir, filepath.FromSlash(p))); err != nil {
						t.Errorf("spoke lacks %s: %v", p, err)
					}
				}
				checkConsistent(t, spoke, keyring)

				again := mirrortest.Run(t, src, up.keyring, spoke, opts)
				if again.Fetched != 0 || len(again.MetadataWritten) != 0 {
					t.Errorf("rerun fetched %d and wrote %v", again.Fetched, again.MetadataWritten)
				}

				// The hub gains a version: the next spoke run brings it in.
				up2 := newUpstream(t, hubConfig("20250701", "20250718", "20250801"), nil)
				run(t, up2, hub.Store, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "release~(jammy|noble)")}})
				mirrortest.Run(t, src, up.keyring, spoke, opts)
				want = selected(t, up2.stream, "arch=amd64", "release~(jammy|noble)")
				got = heldPaths(t, spoke)
				if mode == "verbatim" && !slices.Equal(got, want) {
					t.Errorf("after the hub's new version the spoke holds %v\nwant %v", got, want)
				}
				for _, p := range got {
					if strings.Contains(p, "20250718") && !strings.Contains(p, "20250801") && slices.Contains(want, strings.ReplaceAll(p, "20250718", "20250801")) {
						t.Errorf("spoke still holds the older %s", p)
					}
				}
				checkConsistent(t, spoke, keyring)
			})
		})
	}
}

// A hub whose record the web server will not serve (dot-directories denied): the spoke checks
// the files it would fetch, refuses before transferring anything, names the items and the
// filter that leaves them out; with that filter the run succeeds.
func TestSpokeHubRecordUnreadable(t *testing.T) {
	up := newUpstream(t, hubConfig("20250701"), nil)
	hubDir, hub := newTarget(t)
	run(t, up, hub, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "release~(jammy|noble)")}})
	src := serveDir(t, hubDir, func(p string) bool { return strings.HasPrefix(p, "/.ssmirror/") })

	spokeDir, spoke := newTarget(t)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}}
	rep, err := sync.Run(t.Context(), src, spoke, opts)
	var nas *sync.NotAtSourceError
	if !errors.As(err, &nas) {
		t.Fatalf("err = %v, want a NotAtSourceError", err)
	}
	if nas.Hint != "release~^(jammy|noble)$" || len(nas.Missing) == 0 || !strings.Contains(err.Error(), "release~^(jammy|noble)$") {
		t.Errorf("refusal %q: hint %q, %d missing", err, nas.Hint, len(nas.Missing))
	}
	if rep != nil && rep.Fetched != 0 {
		t.Errorf("fetched %d files before refusing", rep.Fetched)
	}
	if _, err := os.Stat(filepath.Join(spokeDir, "streams")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was published: %v", err)
	}
	opts.Filters = mustParse(t, "arch=amd64", nas.Hint)
	if _, err := sync.Run(t.Context(), src, spoke, opts); err != nil {
		t.Fatalf("with the hint's filter: %v", err)
	}
	checkConsistent(t, spoke, up.keyring)
}

// A file the hub's record says it holds but which is gone (deleted behind its back) is still
// an error at the spoke, not something quietly left out.
func TestSpokeMissingHeldFileFails(t *testing.T) {
	up := newUpstream(t, hubConfig("20250701"), nil)
	hubDir, hub := newTarget(t)
	run(t, up, hub, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "release~(jammy|noble)")}})
	paths := heldPaths(t, hub)
	var victim string
	for _, p := range paths {
		if strings.Contains(p, "amd64") {
			victim = p
			break
		}
	}
	if err := os.Remove(filepath.Join(hubDir, filepath.FromSlash(victim))); err != nil {
		t.Fatal(err)
	}
	_, spoke := newTarget(t)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}}
	_, err := sync.Run(t.Context(), serveDir(t, hubDir, nil), spoke, opts)
	if err == nil || !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("err = %v, want the missing %s reported", err, victim)
	}
}
