package sync_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/mirrortest"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/sync"
)

// An item whose content lies under streams/ but outside the mirror's metadata directory
// (streams/v1/) is allowed (CheckControlPaths), so it must also count as content when the run
// reconciles with the target's listing: otherwise every run finds it "drifted" and fetches it
// again, and an up-to-date target is never up to date.
func TestContentUnderStreamsIsUpToDate(t *testing.T) {
	for _, p := range []string{"streams/extra.bin", "streams/v2/x/squashfs"} {
		t.Run(p, func(t *testing.T) {
			src := hostileUpstream(t, map[string]string{"squashfs": "noble/squashfs", "extra": p}, "sha256")
			_, dst := newTarget(t)
			opts := sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}}
			if _, err := sync.Run(t.Context(), src, dst, opts); err != nil {
				t.Fatal(err)
			}
			rep, err := sync.Run(t.Context(), src, dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Fetched != 0 || rep.Adopted != 0 || len(rep.Drifted) != 0 || len(rep.Plan.Fetch) != 0 {
				t.Errorf("second run: fetched %d, adopted %d, drifted %v, plan fetch %v; want an up-to-date run", rep.Fetched, rep.Adopted, rep.Drifted, rep.Plan.Fetch)
			}
		})
	}
}

// unsignedUpstream serves a generated stream with only its unsigned .json forms.
func unsignedUpstream(t *testing.T, cfg streamtest.Config) store.Source {
	t.Helper()
	s, err := streamtest.Generate(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, src := mirrortest.Serve(t, s)
	return src
}

// A metadata form the mirror published earlier that this run does not write (upstream stopped
// offering the signed forms; or the target moves from curated to verbatim publishing) must not
// stay behind: it is an older generation of a document the new index still names, so a reader
// starting from it (MAAS starts from index.sjson) would see the old catalogue for ever, and once
// its content is collected it lists files that are not there.
func TestStaleMetadataFormsRemoved(t *testing.T) {
	for _, curated := range []bool{false, true} {
		name := "signed upstream then unsigned"
		if curated {
			name = "curated then verbatim"
		}
		t.Run(name, func(t *testing.T) {
			dir, dst := newTarget(t)
			now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			first := sync.Options{Selection: sync.Selection{Max: 1}, Publishing: sync.Publishing{GCGrace: time.Hour}, Hooks: sync.Hooks{Now: clock}}
			if curated {
				first.Signer = loadSigner(t, "other-signing-key.asc")
			}
			run(t, newUpstream(t, smallConfig("20250701"), nil), dst, first)
			if _, err := os.Stat(filepath.Join(dir, "streams/v1/index.sjson")); err != nil {
				t.Fatal(err)
			}

			src := unsignedUpstream(t, smallConfig("20250701", "20250718"))
			// The change of mode is meant here (issue 21: otherwise refused, ModeChangeError).
			second := sync.Options{Selection: sync.Selection{Max: 1, StartPath: "streams/v1/index.json"}, Publishing: sync.Publishing{GCGrace: time.Hour, AllowModeChange: true}, Hooks: sync.Hooks{Now: clock}}
			for range 2 { // the second run collects what the first released
				if _, err := sync.Run(t.Context(), src, dst, second); err != nil {
					t.Fatal(err)
				}
				now = now.Add(2 * time.Hour)
			}
			want, err := store.ReadAll(t.Context(), src, "streams/v1/index.json", 0)
			if err != nil {
				t.Fatal(err)
			}
			for p, data := range tree(t, dir) {
				if !strings.HasPrefix(p, "streams/") {
					continue
				}
				if !strings.HasSuffix(p, ".json") {
					t.Errorf("%s is still in the target: upstream no longer offers it and the mirror did not write it", p)
					continue
				}
				up, err := store.ReadAll(t.Context(), src, p, 0)
				if err != nil || !bytes.Equal(up, data) {
					t.Errorf("%s is not upstream's (%v)", p, err)
				}
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "streams/v1/index.json")); !bytes.Equal(got, want) {
				t.Errorf("index.json is not upstream's")
			}
		})
	}
}

// An index entry naming one of the mirror's own files (.ssmirror/state.json, .ssmirror/lock)
// as its products file is refused before anything is written: published verbatim, upstream's
// bytes would replace the mirror's state or lock.
func TestControlPathProductsFileRefused(t *testing.T) {
	for _, p := range []string{sync.StateKey, sync.LockKey, ".ssmirror/x.json", ".SSMIRROR/state.json"} {
		t.Run(p, func(t *testing.T) {
			sum := sha256.Sum256([]byte("content\n"))
			files := map[string]string{
				"streams/v1/index.json": `{"format": "index:1.0", "updated": "Mon, 23 Nov 2026 10:00:00 +0000", "index": {"c": {"format": "products:1.0", "path": "` + p + `", "products": ["p"]}}}`,
				p:                       `{"format": "products:1.0", "content_id": "c", "updated": "Mon, 23 Nov 2026 10:00:00 +0000", "products": {"p": {"arch": "amd64", "versions": {"1": {"items": {"k": {"ftype": "k", "path": "noble/k", "size": 8, "sha256": "` + hex.EncodeToString(sum[:]) + `"}}}}}}}`,
				"noble/k":               "content\n",
			}
			src := mirrortest.DirSource(t, files)
			target, dst := newTarget(t)
			_, err := sync.Run(t.Context(), src, dst, sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}})
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("a products file at %s was not refused naming it: %v", p, err)
			}
			if files := allFiles(t, target); len(files) != 0 {
				t.Errorf("files written: %v", files)
			}
		})
	}
}

// A run killed before it saved its state leaves objects it wrote and verified that no state
// records. Present with the sha256 the store recorded for them (a directory's xattr), the next
// run trusts them without reading them, and must record them as its own: otherwise they are
// never collected once nothing references them (a leak after every kill -9).
func TestUnrecordedVerifiedObjectsAreOwned(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}, Publishing: sync.Publishing{GCGrace: time.Hour}, Hooks: sync.Hooks{Now: func() time.Time { return now }}}
	first := run(t, up, dst, opts)
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(sync.StateKey))); err != nil { // as if killed before the save
		t.Fatal(err)
	}
	rep := run(t, up, dst, opts)
	if rep.Fetched != 0 {
		t.Errorf("fetched %d of what was already there", rep.Fetched)
	}
	st, err := sync.LoadState(t.Context(), dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Objects) != first.Fetched+first.Copied {
		t.Errorf("the state records %d objects, want the %d the first run wrote", len(st.Objects), first.Fetched+first.Copied)
	}
	// Narrower, pruned, after the grace period: what the selection drops is collected.
	narrow := opts
	narrow.Filters, narrow.Prune = mustParse(t, "arch=amd64", "release=noble"), true
	run(t, up, dst, narrow)
	now = now.Add(2 * time.Hour)
	rep = run(t, up, dst, narrow)
	if len(rep.Deleted) == 0 {
		t.Errorf("nothing collected: the objects the killed run wrote are not the mirror's")
	}
	for p := range tree(t, dir) {
		if strings.HasPrefix(p, "jammy/") {
			t.Errorf("%s is still there after its grace period", p)
		}
	}
}

// writeFiles writes name → content under dir, creating directories.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A key that held content the mirror released, and that upstream later uses for a products file,
// is metadata once published: the collection of the old content (its grace period over) must not
// delete the products file the index just published.
func TestPublishedMetadataNotCollectedAsOldContent(t *testing.T) {
	const reused = "meta/d.json"
	item := func(name, p, content string) string {
		sum := sha256.Sum256([]byte(content))
		return fmt.Sprintf(`%q: {"ftype": %q, "path": %q, "size": %d, "sha256": %q}`, name, name, p, len(content), hex.EncodeToString(sum[:]))
	}
	products := func(id string, items ...string) string {
		return `{"format": "products:1.0", "content_id": "` + id + `", "updated": "Mon, 23 Nov 2026 10:00:00 +0000", "products": {"p` + id + `": {"arch": "amd64", "versions": {"1": {"items": {` + strings.Join(items, ", ") + `}}}}}}`
	}
	index := func(entries ...string) string {
		return `{"format": "index:1.0", "updated": "Mon, 23 Nov 2026 10:00:00 +0000", "index": {` + strings.Join(entries, ", ") + `}}`
	}
	entry := func(id, p string) string {
		return fmt.Sprintf(`%q: {"format": "products:1.0", "path": %q, "products": ["p%s"]}`, id, p, id)
	}
	srcDir := t.TempDir()
	src, err := dirstore.New(srcDir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir, dst := newTarget(t)
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	opts := sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}, Publishing: sync.Publishing{GCGrace: time.Hour}, Hooks: sync.Hooks{Now: func() time.Time { return now }}}
	runOnce := func() {
		t.Helper()
		if _, err := sync.Run(t.Context(), src, dst, opts); err != nil {
			t.Fatal(err)
		}
	}

	// 1: reused is content.
	writeFiles(t, srcDir, map[string]string{
		"streams/v1/index.json": index(entry("c", "streams/v1/c.json")),
		"streams/v1/c.json":     products("c", item("k", "a/k", "kernel\n"), item("d", reused, "old content\n")),
		"a/k":                   "kernel\n",
		reused:                  "old content\n",
	})
	runOnce()
	// 2: upstream drops it: released.
	now = now.Add(time.Minute)
	writeFiles(t, srcDir, map[string]string{"streams/v1/c.json": products("c", item("k", "a/k", "kernel\n"))})
	runOnce()
	// 3: after the grace period, upstream publishes a products file at that key.
	now = now.Add(2 * time.Hour)
	d := products("d", item("x", "a/x", "x\n"))
	writeFiles(t, srcDir, map[string]string{
		"streams/v1/index.json": index(entry("c", "streams/v1/c.json"), entry("d", reused)),
		reused:                  d,
		"a/x":                   "x\n",
	})
	runOnce()
	got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(reused)))
	if err != nil || string(got) != d {
		t.Fatalf("the products file the index names at %s is not there after the run (%v)", reused, err)
	}
}

// An index whose entries name one products file many times (a products document without a
// content_id matches every entry) is refused before that file is read more than once: each
// entry would parse the whole file again, multiplying the catalogue's memory by the number of
// entries, and publish the same key once per entry.
func TestIndexEntriesSharingAProductsFileRefused(t *testing.T) {
	dir := t.TempDir()
	var entries []string
	for i := range 50 {
		entries = append(entries, fmt.Sprintf(`"c%d": {"format": "products:1.0", "path": "streams/v1/shared.json", "products": ["p"]}`, i))
	}
	writeFiles(t, dir, map[string]string{
		"streams/v1/index.json":  `{"format": "index:1.0", "updated": "Mon, 23 Nov 2026 10:00:00 +0000", "index": {` + strings.Join(entries, ", ") + `}}`,
		"streams/v1/shared.json": `{"format": "products:1.0", "updated": "Mon, 23 Nov 2026 10:00:00 +0000", "products": {"p": {"arch": "amd64", "versions": {"1": {"items": {"k": {"ftype": "k", "path": "noble/k", "size": 8, "sha256": "434728a410a78f56fc1b5899c3593436e61ab0c731e9072d95e96db290205e53"}}}}}}}`,
		"noble/k":                "content\n",
	})
	src, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sync.LoadCatalogue(t.Context(), src, "streams/v1/index.json", sync.Verification{}, 0, 4)
	if err == nil || !strings.Contains(err.Error(), "streams/v1/shared.json") {
		t.Errorf("an index naming one products file 50 times was read: %v", err)
	}
}
