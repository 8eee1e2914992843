package sync_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ssmirror/ssmirror/sync"
)

// TestZeroGraceMeansZero: Options.GCGrace and GCOptions.Grace of zero delete what nothing
// references at once, as the flags' "0" always meant. (The library used to read zero as "the
// default day", so the commands wrote a nanosecond to mean zero.)
func TestZeroGraceMeansZero(t *testing.T) {
	t.Run("run", func(t *testing.T) {
		dir, dst := newTarget(t)
		filters := mustParse(t, "release=jammy", "arch=amd64")
		run(t, newUpstream(t, smallConfig("20250701"), nil), dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}, Publishing: sync.Publishing{GCGrace: sync.DefaultGCGrace}})
		old := contentPaths(tree(t, dir))
		up := newUpstream(t, smallConfig("20250701", "20250718"), nil)
		rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}, Publishing: sync.Publishing{GCGrace: 0}})
		if diff := cmp.Diff(old, rep.Deleted); diff != "" || rep.PendingDeletion != 0 {
			t.Errorf("GCGrace 0: pending %d, deleted (-the old version's files +deleted):\n%s", rep.PendingDeletion, diff)
		}
		if diff := cmp.Diff(rep.Plan.Due, rep.Deleted); diff != "" {
			t.Errorf("the run deleted other than its plan released (-plan +deleted):\n%s", diff)
		}
		if diff := cmp.Diff(selected(t, up.stream, "release=jammy", "arch=amd64"), contentPaths(tree(t, dir))); diff != "" {
			t.Errorf("after the run (-held +in the target):\n%s", diff)
		}
	})
	t.Run("gc", func(t *testing.T) {
		dir, dst, held, old, since := gcMirror(t)
		rep := gc(t, dst, sync.GCOptions{Grace: 0, Now: func() time.Time { return since.Add(time.Minute) }})
		if diff := cmp.Diff(old, rep.Deleted); diff != "" {
			t.Errorf("GC with Grace 0 a minute later (-want +deleted):\n%s", diff)
		}
		if diff := cmp.Diff(held, contentPaths(tree(t, dir))); diff != "" {
			t.Errorf("after GC (-held +in the target):\n%s", diff)
		}
	})
}

// TestGraceCountsFromThePublish: a run whose transfer takes three hours releases the old version
// when it publishes the new metadata, not when it plans: until then the old index, which still
// lists the old files, is what readers get. The grace (two hours here) counts from that publish,
// so a run two hours after the plan but one after the publish deletes nothing, and a run two
// hours after the publish deletes the old files.
func TestGraceCountsFromThePublish(t *testing.T) {
	dir, dst := newTarget(t)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	filters := mustParse(t, "release=jammy", "arch=amd64")
	const grace = 2 * time.Hour
	opts := func() sync.Options {
		return sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}, Publishing: sync.Publishing{GCGrace: grace}, Hooks: sync.Hooks{Now: clock}}
	}

	old := newUpstream(t, smallConfig("20250701"), nil)
	run(t, old, dst, opts())
	oldPaths := contentPaths(tree(t, dir))

	up := newUpstream(t, smallConfig("20250701", "20250718"), nil)
	now = now.Add(time.Hour)
	planned := now
	slow := opts()
	slow.OnTransfer = func(int64) func() {
		return func() { now = now.Add(3 * time.Hour) } // the transfer ends three hours after it began
	}
	if rep := run(t, up, dst, slow); rep.Fetched == 0 {
		t.Fatal("the new version was not fetched")
	}
	published := now

	now = planned.Add(grace + 10*time.Minute)
	if !now.Before(published) {
		t.Fatalf("the test's clock: %v is not before the publish at %v", now, published)
	}
	now = published.Add(time.Hour) // past the plan by the grace and more, within it from the publish
	if rep := run(t, up, dst, opts()); len(rep.Deleted) != 0 {
		t.Errorf("deleted %v an hour after the publish that released them (grace %v)", rep.Deleted, grace)
	}
	now = published.Add(grace + time.Minute)
	rep := run(t, up, dst, opts())
	if diff := cmp.Diff(oldPaths, rep.Deleted); diff != "" {
		t.Errorf("deleted once the grace had passed since the publish (-want +got):\n%s", diff)
	}
}
