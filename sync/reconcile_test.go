package sync

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
)

func TestPresenceOf(t *testing.T) {
	const sum, other = "aa11", "bb22"
	rec := Object{Size: 10, SHA256: sum, ETag: "e1"}
	held := Presence{Size: 10, SHA256: sum, Owned: true}
	for _, tc := range []struct {
		name     string
		listed   store.Info
		rec      Object
		recorded bool
		want     Presence
		kept     Object
		holds    bool
	}{
		{"unchanged", store.Info{Size: 10, ETag: "e1"}, rec, true, held, rec, true},
		{"replaced, same size", store.Info{Size: 10, ETag: "e2"}, rec, true, Presence{Size: 10}, Object{}, false},
		{"replaced, other size", store.Info{Size: 11, ETag: "e2"}, rec, true, Presence{Size: 11}, Object{}, false},
		{"other size, same ETag", store.Info{Size: 11, ETag: "e1"}, rec, true, Presence{Size: 11}, Object{}, false},
		{"the store recorded another sha256", store.Info{Size: 10, ETag: "e1", SHA256: other}, rec, true, Presence{Size: 10, SHA256: other}, Object{}, false},
		{"the store recorded the same sha256", store.Info{Size: 10, ETag: "e1", SHA256: sum}, rec, true, held, rec, true},
		{"record from an older state: ETag adopted", store.Info{Size: 10, ETag: "e9"}, Object{Size: 10, SHA256: sum}, true, held, Object{Size: 10, SHA256: sum, ETag: "e9"}, true},
		{"record from an older state, other size", store.Info{Size: 12, ETag: "e9"}, Object{Size: 10, SHA256: sum}, true, Presence{Size: 12}, Object{}, false},
		{"backend without ETags: size decides", store.Info{Size: 10}, rec, true, held, rec, true},
		{"not recorded", store.Info{Size: 10, ETag: "e1", SHA256: sum}, Object{}, false, Presence{Size: 10, SHA256: sum}, Object{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, kept, holds := presenceOf(tc.listed, tc.rec, tc.recorded)
			if p != tc.want || kept != tc.kept || holds != tc.holds {
				t.Errorf("presenceOf = %+v, %+v, %v; want %+v, %+v, %v", p, kept, holds, tc.want, tc.kept, tc.holds)
			}
		})
	}
}

// TestPlanReconcilesWithListing: a mirror holding one version, whose target drifted behind its
// back, plans to bring back exactly what drifted: a deleted object is fetched, one replaced by
// another size is fetched, one replaced by the same size is read and hashed first (adopted only
// if it is still the catalogue's content), and the rest is trusted. A replaced object nothing
// references any more is forgotten, not released: the mirror did not write what is there now.
func TestPlanReconcilesWithListing(t *testing.T) {
	up := []streams.Item{
		item("noble:amd64:ga", "1", "squashfs"),
		item("noble:amd64:ga", "1", "boot-kernel"),
		item("noble:amd64:ga", "1", "boot-initrd"),
		item("noble:amd64:ga", "1", "manifest"),
		item("jammy:amd64:ga", "1", "squashfs"),
	}
	first := MakePlan(PlanInput{Upstream: up, Held: Held{}})
	if len(first.Fetch) != len(up) {
		t.Fatalf("first plan fetches %v", fetchPaths(first))
	}
	objects := map[string]Object{}
	listed := map[string]store.Info{}
	for i, f := range first.Fetch {
		etag := string(rune('a' + i))
		objects[f.Path] = Object{Size: f.Size, SHA256: f.SHA256, ETag: etag}
		listed[f.Path] = store.Info{Key: f.Path, Size: f.Size, ETag: etag}
	}
	objects["old/unreferenced"] = Object{Size: 5, SHA256: "cc33", ETag: "u1"}
	listed["old/unreferenced"] = store.Info{Key: "old/unreferenced", Size: 5, ETag: "u2"} // replaced
	listed["streams/v1/index.json"] = store.Info{Key: "streams/v1/index.json", Size: 100, ETag: "i"}
	listed[".ssmirror/state.json"] = store.Info{Key: ".ssmirror/state.json", Size: 100, ETag: "s"}

	sq, kernel, initrd, manifest := up[0].Path, up[1].Path, up[2].Path, up[3].Path
	delete(listed, sq)                                                          // deleted
	listed[kernel] = store.Info{Key: kernel, Size: up[1].Size + 7, ETag: "k2"}  // replaced, another size
	listed[initrd] = store.Info{Key: initrd, Size: up[2].Size, ETag: "i2"}      // replaced, same size
	objects[manifest] = Object{Size: up[3].Size, SHA256: up[3].SHA256}          // recorded before ETags
	listed[manifest] = store.Info{Key: manifest, Size: up[3].Size, ETag: "m-9"} // untouched

	present, drifted := reconcile(listed, objects)
	if diff := cmp.Diff([]string{initrd, kernel, sq, "old/unreferenced"}, sortedCopy(drifted)); diff != "" {
		t.Errorf("drifted (-want +got):\n%s", diff)
	}
	for _, key := range []string{"streams/v1/index.json", ".ssmirror/state.json"} {
		if _, ok := present[key]; ok {
			t.Errorf("%s taken for content", key)
		}
	}
	if got := objects[manifest].ETag; got != "m-9" {
		t.Errorf("record without an ETag: ETag %q after reconciling, want the listed m-9", got)
	}
	for _, key := range drifted {
		if _, ok := objects[key]; ok {
			t.Errorf("drifted %s still recorded", key)
		}
	}

	p := MakePlan(PlanInput{Upstream: up, Held: first.Held, Present: present})
	want := []string{initrd + " (check)", kernel, sq}
	if diff := cmp.Diff(sortedCopy(want), fetchPaths(p)); diff != "" {
		t.Errorf("fetch (-want +got):\n%s", diff)
	}
	if len(p.Unreferenced) != 0 {
		t.Errorf("released %v: a replaced object is not the mirror's to delete", p.Unreferenced)
	}
	if len(p.Added)+len(p.Removed) != 0 || p.Kept != len(up) {
		t.Errorf("held items changed: added %v, removed %v, kept %d", p.Added, p.Removed, p.Kept)
	}

	// Reconciled again after the run brought them back: nothing to do.
	for _, f := range p.Fetch {
		objects[f.Path] = Object{Size: f.Size, SHA256: f.SHA256, ETag: "new-" + f.Path}
		listed[f.Path] = store.Info{Key: f.Path, Size: f.Size, ETag: "new-" + f.Path}
	}
	present, drifted = reconcile(listed, objects)
	if len(drifted) != 0 {
		t.Errorf("drifted after healing: %v", drifted)
	}
	if p := MakePlan(PlanInput{Upstream: up, Held: first.Held, Present: present}); len(p.Fetch) != 0 {
		t.Errorf("healed mirror plans to fetch %v", fetchPaths(p))
	}
}

// TestStillListed: a metadata object recorded as published is rewritten when the listing does not
// show it as written (missing, another size or ETag).
func TestStillListed(t *testing.T) {
	key := "streams/v1/index.json"
	st := NewState()
	pub := Published{Size: 12, SHA256: "aa11", ETag: "e1"}
	for _, tc := range []struct {
		name   string
		listed map[string]store.Info
		pub    Published
		want   bool
	}{
		{"not listed (no listing)", nil, pub, true},
		{"as written", map[string]store.Info{key: {Size: pub.Size, ETag: "e1"}}, pub, true},
		{"deleted", map[string]store.Info{}, pub, false},
		{"replaced, same size", map[string]store.Info{key: {Size: pub.Size, ETag: "e2"}}, pub, false},
		{"replaced, other size", map[string]store.Info{key: {Size: pub.Size + 1, ETag: "e1"}}, pub, false},
		{"backend without ETags", map[string]store.Info{key: {Size: pub.Size}}, pub, true},
	} {
		st.listed = tc.listed
		if got := st.stillListed(key, tc.pub); got != tc.want {
			t.Errorf("%s: stillListed = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func sortedCopy(s []string) []string { return slices.Sorted(slices.Values(s)) }
