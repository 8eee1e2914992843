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
