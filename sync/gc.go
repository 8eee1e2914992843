package sync

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
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
	// PurgeVersions, on a bucket with versioning or object lock, deletes the noncurrent
	// versions ssmirror itself wrote of each object it deletes (see Options.PurgeVersions).
	PurgeVersions bool
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
	// FreedBytes, Versioning and VersionsKept say what the deletions freed (as Report's).
	FreedBytes   int64             `json:"freed_bytes"`
	Versioning   *store.Versioning `json:"versioning,omitempty"`
	VersionsKept int               `json:"versions_kept"`
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

	recorded := recordedOf(st, rel.Due)
	deleted, err := deleteReleased(ctx, dst, st, rel.Due, lock, opts.Log)
	if deleted != nil {
		rep.Deleted = deleted
	}
	f := freeDeleted(ctx, dst, deleted, recorded, opts.PurgeVersions, lock, opts.Log)
	rep.FreedBytes, rep.Versioning, rep.VersionsKept = f.bytes, f.versioning, f.kept
	return rep, err
}

// What deletions free: on a bucket with versioning or object lock a delete only adds a delete
// marker, and the object's bytes stay as a noncurrent version. There a run frees nothing unless
// the operator opts into deleting the noncurrent versions ssmirror itself wrote (PurgeVersions),
// or a lifecycle rule expires noncurrent versions; the report never counts as freed what stays.

// freed is what a set of deletions freed.
type freed struct {
	bytes      int64
	kept       int               // deleted objects whose bytes (some of them) stay in the store
	versioning *store.Versioning // what the store said, nil when it cannot say
}

// recordedOf copies the state's records of keys, before they are deleted.
func recordedOf(st *State, keys []string) map[string]Object {
	out := make(map[string]Object, len(keys))
	for _, k := range keys {
		if obj, ok := st.Objects[k]; ok {
			out[k] = obj
		}
	}
	return out
}

// freeDeleted accounts for the objects just deleted (recorded: their records in the state):
// their sizes are freed on a store that does not keep deleted objects; on one that does, only
// the versions purge deletes. Purging deletes, of each key, the noncurrent versions whose ETag
// is the one the state recorded (the bytes ssmirror itself wrote; versions written by others
// stay), then, when no version is left, the delete markers. A version that cannot be deleted
// (object lock retention, a legal hold) stays and is logged. Each deletion is fenced.
func freeDeleted(ctx context.Context, dst store.Target, deleted []string, recorded map[string]Object, purge bool, lock *TargetLock, log *slog.Logger) freed {
	var f freed
	if len(deleted) == 0 {
		return f
	}
	if vr, ok := store.As[store.VersioningReader](dst); ok {
		v, err := vr.Versioning(ctx)
		if err != nil {
			// Unknown: claim nothing freed rather than space that may not be.
			log.Warn("could not tell whether deleting frees space (versioning, object lock): none is counted as freed", "error", err)
			f.kept = len(deleted)
			return f
		}
		f.versioning = &v
	}
	if f.versioning == nil || !f.versioning.KeepsDeleted() {
		for _, k := range deleted {
			f.bytes += recorded[k].Size
		}
		return f
	}
	vd, ok := store.As[store.VersionDeleter](dst)
	if !purge || !ok {
		f.kept = len(deleted)
		return f
	}
	for _, key := range deleted {
		n, kept, err := purgeVersions(ctx, vd, key, recorded[key], lock)
		f.bytes += n
		if err != nil {
			log.Warn("could not delete the noncurrent versions of a deleted object: its bytes stay in the bucket", "path", key, "error", err)
		}
		if kept || err != nil {
			f.kept++
		}
		if errors.Is(err, ErrLockLost) {
			f.kept += len(deleted) - 1 - slices.Index(deleted, key)
			break
		}
	}
	return f
}

// purgeVersions deletes key's noncurrent versions of the recorded ETag, then, if none other is
// left, its delete markers; it returns the bytes freed and whether any version stays.
func purgeVersions(ctx context.Context, vd store.VersionDeleter, key string, rec Object, lock *TargetLock) (int64, bool, error) {
	vs, err := vd.Versions(ctx, key)
	if err != nil {
		return 0, true, err
	}
	var n int64
	kept := false
	var markers []store.ObjectVersion
	for _, v := range vs {
		switch {
		case v.DeleteMarker:
			markers = append(markers, v)
			continue
		case v.Latest, rec.ETag == "", v.ETag != rec.ETag:
			kept = true // current again, or not provably the bytes ssmirror wrote
			continue
		}
		if err := fence(ctx, lock, "deleting a noncurrent version of "+key); err != nil {
			return n, true, err
		}
		if err := vd.DeleteVersion(ctx, key, v.ID); err != nil {
			return n, true, err
		}
		n += v.Size
	}
	if kept {
		return n, true, nil // a delete marker removed would make a kept version current again
	}
	for _, m := range markers {
		if err := fence(ctx, lock, "deleting a delete marker of "+key); err != nil {
			return n, false, err
		}
		if err := vd.DeleteVersion(ctx, key, m.ID); err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// stamps gives, for every unreferenced object, since when it has been unreferenced: the recorded
// time, or now for one that became unreferenced with this run.
func (rel Release) stamps(now time.Time) map[string]time.Time {
	out := make(map[string]time.Time, len(rel.Unreferenced))
	for _, key := range rel.Unreferenced {
		if t, ok := rel.Since[key]; ok {
			out[key] = t
		} else {
			out[key] = now
		}
	}
	return out
}

// deleteReleased deletes the released keys still recorded as the mirror's content, each write
// fenced by lock, forgets each one deleted, then saves st (when there was anything to delete).
// Every failure is returned; a failed fence stops it.
func deleteReleased(ctx context.Context, dst store.Target, st *State, keys []string, lock *TargetLock, log *slog.Logger) (deleted []string, err error) {
	if len(keys) == 0 {
		return nil, nil
	}
	var errs []error
	for _, key := range keys {
		if _, owned := st.Objects[key]; !owned {
			continue // it became metadata (putMeta): not content to collect
		}
		if err := fence(ctx, lock, "deleting "+key); err != nil {
			errs = append(errs, err)
			break
		}
		if err := dst.Delete(ctx, key); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(st.Objects, key)
		delete(st.Unreferenced, key)
		deleted = append(deleted, key)
		log.Info("deleted", "path", key)
	}
	if err := saveState(ctx, dst, st, lock.Fence); err != nil {
		errs = append(errs, err)
	}
	return deleted, errors.Join(errs...)
}
