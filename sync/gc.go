package sync

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// GCOptions configure GC.
type GCOptions struct {
	// Grace is how long an object must have been unreferenced before it is deleted: zero deletes
	// every unreferenced object, negative none (only report). Zero means zero: callers that want
	// the default set DefaultGCGrace (the command's flag does).
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
		lockOpts := opts.Lock
		if lockOpts.Log == nil {
			lockOpts.Log = opts.Log
		}
		lock, lctx, err = AcquireLock(ctx, dst, lockOpts)
		if err != nil {
			return nil, err
		}
		defer lock.Release()
		ctx = lctx
	}
	st, err := LoadState(ctx, dst)
	if err != nil {
		return nil, err
	}
	// Forget recorded objects that are gone, then decide what nothing held references, exactly
	// as a run's plan does (planRelease).
	listed, err := listTarget(ctx, dst)
	if err != nil {
		return nil, err
	}
	// Only what this target's state names is its own (leftovers.go): refuse to delete under a
	// target nested in this one, and clean up only this target's leftovers.
	own := newOwnership(listed)
	owned := make(map[string]bool, len(st.Objects))
	for key := range st.Objects {
		owned[key] = true
	}
	if err := checkNested(dst, own, owned); err != nil {
		return nil, err
	}
	if !opts.DryRun {
		own.addState(st)
		cleanLeftovers(ctx, dst, own, opts.Log)
	}
	st.noteListing(listed)
	reconcile(listed, st.Objects)
	owned = make(map[string]bool, len(st.Objects))
	for key := range st.Objects {
		owned[key] = true
	}
	now := opts.Now()
	rel := planRelease(st.Held, owned, st.Unreferenced, now, opts.Grace)
	st.Unreferenced = rel.stamps(now)
	pending := map[string]bool{}
	for _, key := range rel.Pending {
		pending[key] = true
	}
	for _, key := range rel.Unreferenced {
		since := st.Unreferenced[key]
		c := GCCandidate{Path: key, Size: st.Objects[key].Size, Since: since, DueNow: !pending[key]}
		if opts.Grace >= 0 {
			c.Due = since.Add(opts.Grace)
		}
		rep.Candidates = append(rep.Candidates, c)
	}
	rep.Pending = len(rel.Pending)
	if opts.DryRun || opts.Grace < 0 {
		return rep, nil
	}

	deleted, err := deleteReleased(ctx, dst, st, rel.Due, lock, opts.Log)
	if deleted != nil {
		rep.Deleted = deleted
	}
	return rep, err
}
