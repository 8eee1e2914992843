package sync_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/sync"
	"github.com/ssmirror/ssmirror/sync/audit"
)

// gcMirror holds jammy/amd64 20250718 after holding 20250701: the old version's files became
// unreferenced at the returned time, and are kept by the run's 24 h grace.
func gcMirror(t *testing.T) (dir string, dst *dirstore.Store, held, old []string, since time.Time) {
	t.Helper()
	dir, dst = newTarget(t)
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	filters := []string{"release=jammy", "arch=amd64"}
	first := newUpstream(t, smallConfig("20250701"), nil)
	run(t, first, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}, Hooks: sync.Hooks{Now: func() time.Time { return t0 }}})
	old = contentPaths(tree(t, dir))

	since = t0.Add(time.Hour)
	up := newUpstream(t, smallConfig("20250701", "20250718"), nil)
	rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}, Publishing: sync.Publishing{GCGrace: 24 * time.Hour}, Hooks: sync.Hooks{Now: func() time.Time { return since }}})
	if rep.PendingDeletion != len(old) || len(old) == 0 {
		t.Fatalf("setup: %d pending deletion, want the %d old files", rep.PendingDeletion, len(old))
	}
	held = selected(t, up.stream, filters...)
	return dir, dst, held, old, since
}

func gc(t *testing.T, dst *dirstore.Store, opts sync.GCOptions) *sync.GCReport {
	t.Helper()
	rep, err := sync.GC(t.Context(), dst, opts)
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	return rep
}

func candidatePaths(rep *sync.GCReport) []string {
	var out []string
	for _, c := range rep.Candidates {
		out = append(out, c.Path)
	}
	return out
}

func TestGCDryRunDeletesNothing(t *testing.T) {
	dir, dst, _, old, since := gcMirror(t)
	before := tree(t, dir)
	state, err := os.ReadFile(filepath.Join(dir, sync.StateKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at      time.Time
		dueNow  bool
		pending int
	}{{since.Add(2 * time.Hour), false, len(old)}, {since.Add(30 * time.Hour), true, 0}} {
		rep := gc(t, dst, sync.GCOptions{Grace: 24 * time.Hour, DryRun: true, Now: func() time.Time { return c.at }})
		if diff := cmp.Diff(old, candidatePaths(rep)); diff != "" {
			t.Errorf("candidates at %v (-want +got):\n%s", c.at, diff)
		}
		for _, cand := range rep.Candidates {
			if cand.DueNow != c.dueNow || !cand.Since.Equal(since) || !cand.Due.Equal(since.Add(24*time.Hour)) || cand.Size == 0 {
				t.Errorf("at %v: %+v, want due now %v, since %v", c.at, cand, c.dueNow, since)
			}
		}
		if len(rep.Deleted) != 0 || rep.Pending != c.pending || !rep.DryRun {
			t.Errorf("dry run at %v: deleted %v, pending %d (want %d)", c.at, rep.Deleted, rep.Pending, c.pending)
		}
	}
	if diff := cmp.Diff(before, tree(t, dir)); diff != "" {
		t.Errorf("dry run changed the mirror (-before +after):\n%s", diff)
	}
	after, _ := os.ReadFile(filepath.Join(dir, sync.StateKey))
	if string(after) != string(state) {
		t.Error("dry run rewrote the state")
	}
}

func TestGCGracePeriod(t *testing.T) {
	dir, dst, held, old, since := gcMirror(t)
	opts := sync.GCOptions{Grace: 24 * time.Hour}

	// Within the grace period: kept.
	opts.Now = func() time.Time { return since.Add(23 * time.Hour) }
	if rep := gc(t, dst, opts); len(rep.Deleted) != 0 || rep.Pending != len(old) {
		t.Fatalf("within the grace period: deleted %v, pending %d", rep.Deleted, rep.Pending)
	}
	if diff := cmp.Diff(union(held, old), contentPaths(tree(t, dir))); diff != "" {
		t.Fatalf("within the grace period (-want +got):\n%s", diff)
	}

	// After it: exactly the old version goes; the mirror still verifies.
	opts.Now = func() time.Time { return since.Add(24*time.Hour + time.Second) }
	rep := gc(t, dst, opts)
	if diff := cmp.Diff(old, rep.Deleted); diff != "" {
		t.Errorf("deleted (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(held, contentPaths(tree(t, dir))); diff != "" {
		t.Errorf("after GC (-want +got):\n%s", diff)
	}
	if vr := verify(t, dst, audit.VerifyOptions{}); len(vr.Problems) != 0 {
		t.Errorf("mirror after GC: %+v", vr.Problems)
	}
	// And the state forgot them: nothing left to collect.
	if rep := gc(t, dst, opts); len(rep.Candidates) != 0 || len(rep.Deleted) != 0 {
		t.Errorf("second GC: %+v", rep)
	}
}

func TestGCNeverDeletesHeldOrForeign(t *testing.T) {
	dir, dst, held, old, since := gcMirror(t)
	ctx := t.Context()
	// A state that wrongly marks a held object unreferenced long ago must not make GC delete it.
	st, err := sync.LoadState(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	st.Unreferenced[held[0]] = since.Add(-1000 * time.Hour)
	if err := sync.SaveState(ctx, dst, st); err != nil {
		t.Fatal(err)
	}
	// A file the mirror did not write is never its to delete.
	foreign := filepath.Join(dir, "jammy", "README")
	if err := os.WriteFile(foreign, []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := gc(t, dst, sync.GCOptions{Grace: time.Nanosecond, Now: func() time.Time { return since.Add(1000 * time.Hour) }})
	if diff := cmp.Diff(old, rep.Deleted); diff != "" {
		t.Errorf("deleted (-want +got):\n%s", diff)
	}
	files := tree(t, dir)
	for _, p := range held {
		if _, ok := files[p]; !ok {
			t.Errorf("held %s deleted", p)
		}
	}
	if _, ok := files["jammy/README"]; !ok {
		t.Error("a file the mirror did not write was deleted")
	}
}
