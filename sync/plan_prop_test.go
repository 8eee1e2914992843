package sync

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
)

// planWorld is a random target as a run finds it: what the mirror held and recorded, and what
// the listing shows, with drift (recorded objects gone or replaced), strays it never wrote,
// objects a killed run wrote without recording them, and objects unreferenced since various
// times.
type planWorld struct {
	in       PlanInput
	objects  map[string]Object     // a copy of in.Objects, to see that planning changes nothing
	listed   map[string]store.Info // a copy of in.Listed
	unref    map[string]time.Time  // a copy of in.Unreferenced
	shaless  map[string]bool       // paths some upstream item gives no sha256 for
	metadata bool                  // in.MetadataOnly
}

var propNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func randomFilters(r *rand.Rand) streams.Filters {
	var f streams.Filters
	switch r.IntN(4) {
	case 1:
		f, _ = streams.ParseFilters([]string{"arch=amd64"})
	case 2:
		f, _ = streams.ParseFilters([]string{"ftype~i[01]"})
	}
	return f
}

func newPlanWorld(r *rand.Rand) planWorld {
	n := 5 + r.IntN(60)
	up := fuzzItems(r, n)
	shaless := map[string]bool{}
	for i := range up {
		if up[i].Path != "" && r.IntN(15) == 0 {
			up[i].SHA256 = "" // a catalogue may give only sha512 or md5 for an item
			shaless[up[i].Path] = true
		}
	}
	// What an earlier run held: a plan over an earlier catalogue.
	prev := MakePlan(PlanInput{Upstream: fuzzItems(r, n), Filters: randomFilters(r), Max: r.IntN(3), Held: Held{}})
	objects := map[string]Object{}
	listed := map[string]store.Info{}
	unref := map[string]time.Time{}
	for path := range prev.Held.Paths() {
		obj := Object{Size: pathSize(path), SHA256: pathSum(path), ETag: "e1"}
		info := store.Info{Key: path, Size: obj.Size, ETag: "e1"}
		switch r.IntN(10) {
		case 0: // recorded, gone from the target
			objects[path] = obj
		case 1: // recorded, replaced behind the mirror's back
			objects[path] = obj
			info.ETag, info.Size = "e2", info.Size+int64(r.IntN(2))
			listed[path] = info
		case 2: // written by a killed run: the store recorded its sha256, the state did not
			info.SHA256 = obj.SHA256
			listed[path] = info
		case 3: // not there at all
		default:
			objects[path] = obj
			listed[path] = info
		}
	}
	// Owned objects nothing held references (some referenced again upstream), unreferenced
	// since some time or not stamped yet; and strays the mirror never wrote.
	for i := range 14 {
		path := fmt.Sprintf("f/%d", i)
		if r.IntN(3) == 0 {
			if _, ok := listed[path]; !ok {
				listed[path] = store.Info{Key: path, Size: pathSize(path) + int64(r.IntN(2))}
			}
			continue
		}
		if _, ok := objects[path]; ok || r.IntN(2) == 0 {
			continue
		}
		objects[path] = Object{Size: pathSize(path), SHA256: pathSum(path), ETag: "e1"}
		listed[path] = store.Info{Key: path, Size: pathSize(path), ETag: "e1"}
	}
	for path := range objects {
		if r.IntN(3) > 0 {
			unref[path] = propNow.Add(-time.Duration(r.IntN(72)) * time.Hour)
		}
	}
	grace := []time.Duration{-1, 0, time.Hour, 24 * time.Hour, DefaultGCGrace}[r.IntN(5)]
	in := PlanInput{
		Upstream: up, Filters: randomFilters(r), Max: r.IntN(3), Keep: r.IntN(2) == 0, Prune: r.IntN(2) == 0,
		Held: prev.Held, Listed: listed, Objects: objects, Unreferenced: unref, Now: propNow, Grace: grace,
		VerifyExisting: r.IntN(6) == 0, WholeVersions: r.IntN(4) == 0, MetadataOnly: r.IntN(8) == 0,
	}
	return planWorld{in: in, objects: maps.Clone(objects), listed: maps.Clone(listed), unref: maps.Clone(unref), shaless: shaless, metadata: in.MetadataOnly}
}

// checkDecisions checks what must hold of any plan: every fetch is held; what is released is
// the mirror's own, referenced by nothing it will record as held, and unreferenced for the
// grace period; pending and due split the unreferenced; planning changed none of its input.
func checkDecisions(t *testing.T, w planWorld, p *Plan) {
	t.Helper()
	in := w.in
	refs := p.Held.Paths()
	for _, f := range p.Fetch {
		if refs[f.Path] == 0 {
			t.Fatalf("%s is fetched but not held", f.Path)
		}
	}
	recorded := p.Held
	if in.MetadataOnly {
		recorded = in.Held
	}
	recRefs := recorded.Paths()
	for _, key := range p.Due {
		if recRefs[key] > 0 {
			t.Fatalf("%s is released but still referenced by what the run records as held", key)
		}
		if _, owned := p.Objects[key]; !owned {
			if _, adopted := p.Adopt[key]; !adopted {
				t.Fatalf("%s is released but the mirror does not own it", key)
			}
		}
		since, stamped := in.Unreferenced[key]
		switch {
		case in.Grace < 0:
			t.Fatalf("%s is released with a negative grace (never)", key)
		case stamped && propNow.Sub(since) < in.Grace:
			t.Fatalf("%s is released %v after it became unreferenced, within the grace of %v", key, propNow.Sub(since), in.Grace)
		case !stamped && in.Grace > 0:
			t.Fatalf("%s is released as it becomes unreferenced, within the grace of %v", key, in.Grace)
		}
	}
	if len(p.Due)+len(p.Pending) != len(p.Unreferenced) {
		t.Fatalf("%d due and %d pending of %d unreferenced", len(p.Due), len(p.Pending), len(p.Unreferenced))
	}
	if !reflect.DeepEqual(in.Objects, w.objects) || !reflect.DeepEqual(in.Listed, w.listed) || !reflect.DeepEqual(in.Unreferenced, w.unref) {
		t.Fatal("planning changed its input")
	}
}

// apply does what a run does with p, on paper: what it fetches becomes present (with
// upstream's content) and recorded, what it adopts is recorded, what it releases is deleted,
// and the new Held and the unreferenced stamps are recorded.
func apply(w planWorld, p *Plan) (held Held, objects map[string]Object, listed map[string]store.Info, unref map[string]time.Time) {
	objects = maps.Clone(p.Objects)
	maps.Copy(objects, p.Adopt)
	listed = maps.Clone(w.in.Listed)
	for _, f := range p.Fetch {
		objects[f.Path] = Object{Size: f.Size, SHA256: pathSum(f.Path), ETag: "new"}
		listed[f.Path] = store.Info{Key: f.Path, Size: f.Size, ETag: "new"}
	}
	unref = p.stamps(w.in.Now)
	for _, key := range p.Due {
		delete(objects, key)
		delete(listed, key)
		delete(unref, key)
	}
	return p.Held, objects, listed, unref
}

// TestPlanProperties: over many random targets and options, a plan's decisions are sound
// (checkDecisions), and a plan applied (apply) and made again, with the same catalogue and
// options at the same time, fetches nothing (only re-checks paths the catalogue gives no sha256
// for), holds the same, adopts, drifts and releases nothing.
func TestPlanProperties(t *testing.T) {
	iterations := 3000
	if testing.Short() {
		iterations = 300
	}
	for seed := range uint64(iterations) {
		r := rand.New(rand.NewPCG(seed, 15))
		w := newPlanWorld(r)
		p := MakePlan(w.in)
		checkDecisions(t, w, p)
		if w.metadata {
			continue // it records the Held it had: nothing to converge to
		}
		held, objects, listed, unref := apply(w, p)
		again := w.in
		again.Held, again.Objects, again.Listed, again.Unreferenced, again.VerifyExisting = held, objects, listed, unref, false
		p2 := MakePlan(again)
		checkDecisions(t, planWorld{in: again, objects: maps.Clone(objects), listed: maps.Clone(listed), unref: maps.Clone(unref)}, p2)
		for _, f := range p2.Fetch {
			if !f.Check || !w.shaless[f.Path] {
				t.Fatalf("seed %d: planned again after applying, still fetches %+v", seed, f)
			}
		}
		if diff := cmp.Diff(p.Held, p2.Held); diff != "" {
			t.Fatalf("seed %d: planned again, holds otherwise (-first +again):\n%s", seed, diff)
		}
		if len(p2.Adopt)+len(p2.Drifted)+len(p2.Due) != 0 {
			t.Fatalf("seed %d: planned again, adopts %v, drifted %v, releases %v", seed, p2.Adopt, p2.Drifted, p2.Due)
		}
		if !slices.Equal(p2.Pending, p.Pending) {
			t.Fatalf("seed %d: pending %v, then %v", seed, p.Pending, p2.Pending)
		}
	}
}

// TestPlanReleaseGrace: the release decision at the edges of the grace period.
func TestPlanReleaseGrace(t *testing.T) {
	owned := map[string]bool{"held": true, "old": true, "edge": true, "fresh": true, "new": true}
	held := Held{{"c", "p", "v"}: {"i": {Path: "held", Size: 1}}}
	since := map[string]time.Time{
		"held": propNow.Add(-100 * time.Hour), "old": propNow.Add(-25 * time.Hour),
		"edge": propNow.Add(-24 * time.Hour), "fresh": propNow.Add(-time.Hour),
	}
	for _, c := range []struct {
		grace        time.Duration
		due, pending []string
	}{
		{24 * time.Hour, []string{"edge", "old"}, []string{"fresh", "new"}},
		{0, []string{"edge", "fresh", "new", "old"}, nil},
		{-1, nil, []string{"edge", "fresh", "new", "old"}},
	} {
		rel := planRelease(held, owned, since, propNow, c.grace)
		if diff := cmp.Diff(c.due, rel.Due); diff != "" {
			t.Errorf("grace %v: due (-want +got):\n%s", c.grace, diff)
		}
		if diff := cmp.Diff(c.pending, rel.Pending); diff != "" {
			t.Errorf("grace %v: pending (-want +got):\n%s", c.grace, diff)
		}
		if _, ok := rel.Since["new"]; ok {
			t.Errorf("grace %v: a newly unreferenced object has a recorded stamp", c.grace)
		}
		if got := rel.stamps(propNow)["new"]; !got.Equal(propNow) {
			t.Errorf("grace %v: newly unreferenced stamped %v, want now", c.grace, got)
		}
	}
}
