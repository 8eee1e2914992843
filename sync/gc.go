package sync

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// GCOptions configure GC.
type GCOptions struct {
	// Grace is how long an object must have been unreferenced before it is deleted (0:
	// DefaultGCGrace; negative: never delete, only report).
	Grace time.Duration
	// DryRun reports what would be deleted, and when, deleting nothing and writing nothing.
	DryRun bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives each deletion (nil: nothing is logged).
	Log *slog.Logger
	// Lock configures the target's lock, taken unless DryRun.
	Lock LockOptions
}

// GCCandidate is one object the mirror owns that nothing it holds references.
type GCCandidate struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Since is when it became unreferenced; Due when it may be deleted (zero with a negative grace).
	Since time.Time `json:"since"`
	Due   time.Time `json:"due,omitzero"`
	// DueNow means its grace period is over.
	DueNow bool `json:"due_now"`
}

// GCReport says what GC found and did.
type GCReport struct {
	DryRun bool `json:"dry_run"`
	// Candidates are every owned, unreferenced object, sorted by path.
	Candidates []GCCandidate `json:"candidates"`
	// Deleted lists the objects deleted (empty in a dry run).
	Deleted []string `json:"deleted"`
	// Pending counts the candidates still within the grace period.
	Pending int `json:"pending"`
}

// GC runs the deferred garbage collection on its own: it reads the state, lists the target, and
// deletes the objects the mirror wrote that nothing it holds has referenced for longer than the
// grace period, exactly as the end of a sync run does. Objects the state's held items reference
// are never deleted, nor objects the mirror did not write. With DryRun nothing changes.
// Except in a dry run it holds the target's lock (opts.Lock), so it never runs beside a sync.
func GC(ctx context.Context, dst store.Target, opts GCOptions) (*GCReport, error) {
	if opts.Grace == 0 {
		opts.Grace = DefaultGCGrace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rep := &GCReport{DryRun: opts.DryRun, Candidates: []GCCandidate{}, Deleted: []string{}}
	var lock *TargetLock
	if !opts.DryRun {
		var lctx context.Context
		var err error
		lock, lctx, err = AcquireLock(ctx, dst, opts.Lock)
		if err != nil {
			return nil, err
		}
		defer lock.Release()
		ctx = lctx
		cleanLeftovers(ctx, dst, opts.Log) // it looks at the whole target anyway
	}
	st, err := LoadState(ctx, dst)
	if err != nil {
		return nil, err
	}
	// Forget recorded objects that are gone, then (re)stamp what nothing held references.
	if _, _, err := listPresent(ctx, dst, st); err != nil {
		return nil, err
	}
	now := opts.Now()
	markUnreferenced(st, now)
	refs := st.Held.Paths()
	for key := range st.Unreferenced {
		if refs[key] > 0 { // markUnreferenced never leaves one; never trust that with a delete
			delete(st.Unreferenced, key)
		}
	}

	for key, since := range st.Unreferenced {
		c := GCCandidate{Path: key, Size: st.Objects[key].Size, Since: since}
		if opts.Grace >= 0 {
			c.Due = since.Add(opts.Grace)
			c.DueNow = now.Sub(since) >= opts.Grace
		}
		if !c.DueNow {
			rep.Pending++
		}
		rep.Candidates = append(rep.Candidates, c)
	}
	sort.Slice(rep.Candidates, func(i, j int) bool { return rep.Candidates[i].Path < rep.Candidates[j].Path })
	if opts.DryRun || opts.Grace < 0 {
		return rep, nil
	}

	runRep := &Report{}
	err = collect(ctx, dst, st, runRep, &Options{GCGrace: opts.Grace, Now: func() time.Time { return now }, Log: opts.Log, lock: lock})
	if runRep.Deleted != nil {
		rep.Deleted = runRep.Deleted
	}
	return rep, err
}
