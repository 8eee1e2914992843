package sync_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ssmirror/ssmirror/internal/maasmodel"
	"github.com/ssmirror/ssmirror/internal/mirrortest"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/sync"
)

// allFiles reads every file under dir, the mirror's own .ssmirror/ included, except the lease
// object and the directory store's swap lock: every run rewrites the lease (taken, then marked
// released; callers check it is released with checkReleased).
func allFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if filepath.ToSlash(rel) == sync.LockKey || d.Name() == dirstore.SwapLockName {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A filter typo (arch==amd64 is arch = "=amd64") selects nothing: the run fails, names the
// filter and the values arch has, and the target's files stay as they were, byte for byte.
func TestEmptySelectionIsRefused(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "release=noble", "arch=amd64"), Max: 1}})
	before := allFiles(t, dir)

	for _, args := range [][]string{{"arch==amd64"}, {"relase=noble"}, {"release=noble", "arch=i386"}} {
		_, err := sync.Run(t.Context(), up.src, dst, sync.Options{
			Selection:  sync.Selection{Filters: mustParse(t, args...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}, Prune: true},
			Publishing: sync.Publishing{GCGrace: time.Nanosecond},
		})
		if err == nil {
			t.Errorf("%v: a selection of no item was published", args)
		} else {
			t.Logf("%v: %v", args, err)
		}
		if diff := cmp.Diff(before, allFiles(t, dir)); diff != "" {
			t.Errorf("%v: the target changed (-before +after):\n%s", args, diff)
		}
		checkReleased(t, dst)
	}
	_, err := sync.Run(t.Context(), up.src, dst, sync.Options{
		Selection: sync.Selection{Filters: mustParse(t, "arch==amd64"), Verification: sync.Verification{Keyring: up.keyring}},
	})
	if err == nil || !strings.Contains(err.Error(), `no item has arch "=amd64"; arch is one of: "amd64", "arm64"`) {
		t.Errorf("the message does not say what arch is: %v", err)
	}
}

// An item whose path is the mirror's lock, state or one of its metadata files is refused
// before anything is written (it used to be mirrored over the lock, locking the target until
// 2099).
func TestControlPathItemsAreRefused(t *testing.T) {
	for _, p := range []string{".ssmirror/lock", ".ssmirror/state.json", "streams/v1/index.json", "streams/v1/c.sjson", "streams/v1/extra.bin"} {
		t.Run(p, func(t *testing.T) {
			src := hostileUpstream(t, map[string]string{"squashfs": "noble/squashfs", "evil": p}, "sha256")
			dir, dst := newTarget(t)
			_, err := sync.Run(t.Context(), src, dst, sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}})
			if err == nil {
				t.Fatal("an item at a control path was mirrored")
			}
			if !strings.Contains(err.Error(), "item evil: path "+p+" ") {
				t.Errorf("the error does not name the item and its path: %v", err)
			}
			if files := allFiles(t, dir); len(files) != 0 {
				t.Errorf("files written: %v", files)
			}
			checkReleased(t, dst)
			// The target is not locked: a good selection runs at once.
			good := hostileUpstream(t, map[string]string{"squashfs": "noble/squashfs"}, "sha256")
			if _, err := sync.Run(t.Context(), good, dst, sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}}); err != nil {
				t.Errorf("a following run: %v", err)
			}
		})
	}
}

// A catalogue that gives only md5 (or only sha512) for an item: an object already in the
// target with the right size but other bytes is not adopted, it is fetched again; one with the
// right bytes is adopted.
func TestWeakHashOnlyItemsVerifiedOnAdoption(t *testing.T) {
	for _, h := range []string{"md5", "sha512"} {
		t.Run(h, func(t *testing.T) {
			const p = "noble/amd64/squashfs"
			src := hostileUpstream(t, map[string]string{"squashfs": p}, h)
			want := "content of " + p + "\n"
			dir, dst := newTarget(t)
			wrong := strings.Repeat("X", len(want))
			if err := os.MkdirAll(filepath.Join(dir, "noble/amd64"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, p), []byte(wrong), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := sync.Run(t.Context(), src, dst, sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(dir, p))
			if string(got) != want {
				t.Errorf("the present object with wrong bytes was kept: %q", got)
			}
			if rep.Adopted != 0 || rep.Fetched != 1 {
				t.Errorf("adopted %d, fetched %d; want 0 and 1", rep.Adopted, rep.Fetched)
			}

			// The right bytes, present but unrecorded: adopted, not fetched.
			dir2, dst2 := newTarget(t)
			os.MkdirAll(filepath.Join(dir2, "noble/amd64"), 0o755)
			if err := os.WriteFile(filepath.Join(dir2, p), []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err = sync.Run(t.Context(), src, dst2, sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Adopted != 1 || rep.Fetched != 0 {
				t.Errorf("right bytes: adopted %d, fetched %d; want 1 and 0", rep.Adopted, rep.Fetched)
			}
		})
	}
}

// readJSON reads a published JSON document of a directory mirror.
func readJSON(t *testing.T, dir, key string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, key))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return doc
}

// Curated mode with an item-level filter publishes whole versions: every version it lists has
// every item upstream's version has (MAAS 4 rejects a products file in which a v3 version lacks
// boot-kernel, boot-initrd, manifest, or both squashfs and root-image.gz), and each is in the
// mirror.
func TestCuratedPublishesWholeVersions(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	operator := loadSigner(t, "other-signing-key.asc")
	rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "ftype!=manifest", "release=noble"), Max: 1}, Publishing: sync.Publishing{Signer: operator}})

	upstreamItems := map[string][]string{} // product/version → item names
	for _, it := range up.stream.Items {
		k := it.Product + "/" + it.Version
		upstreamItems[k] = append(upstreamItems[k], it.Name)
	}
	files := tree(t, dir)
	versions := 0
	for _, id := range []string{streamtest.DownloadID, streamtest.BootloaderID} {
		key := strings.TrimSuffix(streamtest.ProductsPath(id), ".json") + ".json"
		if _, ok := files[key]; !ok {
			continue
		}
		doc := readJSON(t, dir, key)
		for pname, p := range doc["products"].(map[string]any) {
			for vname, v := range p.(map[string]any)["versions"].(map[string]any) {
				versions++
				items := v.(map[string]any)["items"].(map[string]any)
				var names []string
				for name, it := range items {
					names = append(names, name)
					path := it.(map[string]any)["path"].(string)
					if _, ok := files[path]; !ok {
						t.Errorf("%s %s %s: %s listed but not in the mirror", pname, vname, name, path)
					}
				}
				if diff := cmp.Diff(sorted(upstreamItems[pname+"/"+vname]), sorted(names)); diff != "" {
					t.Errorf("%s %s is not whole (-upstream +published):\n%s", pname, vname, diff)
				}
				if id == streamtest.DownloadID {
					for _, need := range []string{"boot-kernel", "boot-initrd", "manifest"} {
						if _, ok := items[need]; !ok {
							t.Errorf("%s %s lacks %s: MAAS rejects the products file", pname, vname, need)
						}
					}
					_, sq := items["squashfs"]
					_, gz := items["root-image.gz"]
					if !sq && !gz {
						t.Errorf("%s %s has neither squashfs nor root-image.gz", pname, vname)
					}
				}
			}
		}
	}
	if versions == 0 {
		t.Fatal("nothing published")
	}
	// And the whole curated mirror is what MAAS 4's models accept.
	if _, err := maasmodel.CheckFS(os.DirFS(dir), "streams/v1/index.json"); err != nil {
		t.Errorf("MAAS would reject the curated mirror: %v", err)
	}
	t.Logf("%d versions published whole; %d items added", versions, len(rep.Plan.Added))
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// Curated "updated" stamps (products files, index entries, index) move to the run's time when
// the curated content changes and stay when it does not (an up-to-date run rewrites nothing),
// even when upstream's own stamp did not change.
func TestCuratedUpdatedFollowsContent(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	operator := loadSigner(t, "other-signing-key.asc")
	now := time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	stamp := func(t time.Time) string { return t.Format("Mon, 02 Jan 2006 15:04:05 -0700") }
	productsKey := streamtest.ProductsPath(streamtest.DownloadID)
	check := func(when string, want time.Time) {
		t.Helper()
		ix := readJSON(t, dir, "streams/v1/index.json")
		if got := ix["updated"]; got != stamp(want) {
			t.Errorf("%s: index updated %v, want %s", when, got, stamp(want))
		}
		if got := ix["index"].(map[string]any)[streamtest.DownloadID].(map[string]any)["updated"]; got != stamp(want) {
			t.Errorf("%s: index entry updated %v, want %s", when, got, stamp(want))
		}
		if got := readJSON(t, dir, productsKey)["updated"]; got != stamp(want) {
			t.Errorf("%s: products updated %v, want %s", when, got, stamp(want))
		}
	}
	opts := func(filters ...string) sync.Options {
		return sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}, Publishing: sync.Publishing{Signer: operator}, Hooks: sync.Hooks{Now: clock}}
	}

	first := now
	run(t, up, dst, opts("release=jammy", "arch=amd64"))
	check("first run", first)

	now = now.Add(time.Hour)
	rep := run(t, up, dst, opts("release=jammy", "arch=amd64"))
	if len(rep.MetadataWritten) != 0 {
		t.Errorf("an up-to-date curated run wrote %v", rep.MetadataWritten)
	}
	check("up-to-date run", first)

	// The same upstream, more selected: the curated content changes, upstream's stamp does not.
	now = now.Add(time.Hour)
	rep = run(t, up, dst, opts("release=noble", "arch=amd64"))
	if len(rep.MetadataWritten) == 0 {
		t.Fatal("nothing written")
	}
	check("content changed", now)
}

// AllowEmpty lets an empty selection through: the run succeeds and, as runs accumulate, what
// the target held stays held.
func TestAllowEmptySelection(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "release=noble", "arch=amd64"), Max: 1}})
	before := tree(t, dir)
	rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch==amd64"), Max: 1, AllowEmpty: true}})
	if len(rep.Plan.Added) != 0 || len(rep.Plan.Removed) != 0 {
		t.Errorf("added %d, removed %d", len(rep.Plan.Added), len(rep.Plan.Removed))
	}
	if diff := cmp.Diff(contentPaths(before), contentPaths(tree(t, dir))); diff != "" {
		t.Errorf("content changed (-before +after):\n%s", diff)
	}
}

func hostileUpstream(t *testing.T, items map[string]string, hashes ...string) store.Source {
	t.Helper()
	return mirrortest.HostileUpstream(t, items, hashes...)
}
