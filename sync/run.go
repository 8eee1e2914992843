package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	gosync "sync"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/ranged"
	"github.com/ssmirror/ssmirror/streams"
)

// run is one Run against one target. Options stay what the caller gave (configuration); what
// the run settles from them (the library's defaults), what it holds (the lease, the chunk
// buffers) and what it builds up (the catalogue, the state, the plan, the report) live here. Its
// methods are the stages, in order: readCatalogue, readTarget, makePlan, transfer, publish,
// record, collect.
//
// Only readCatalogue depends on upstream alone; everything after it belongs to the one target,
// so that a run per target can share one reading of upstream.
type run struct {
	opts Options
	src  store.Source
	dst  store.Target

	// Settled from opts.
	log         *slog.Logger
	progress    *Progress
	now         func() time.Time
	concurrency int
	// ranged gives the run's pool of range streams (ranged.Pool), made on first use and shared
	// by every file of the run, and by every target of a fan-out run (nil when ranged downloads
	// are off): the hub's.
	ranged func() *ranged.Pool
	// hub is what the runs of one RunTargets share: upstream's catalogue and the transfer.
	hub *hub
	// The transfer stage's own (tmu guards them): the failures, the content already in the
	// target by sha256 (copySource), the context the hub writes this target with, and whether
	// this target fell too far behind the others to be written any more this run.
	tmu     gosync.Mutex
	terrs   []error
	bySum   map[string]string
	tctx    context.Context
	givenUp bool
	arrived bool // came to the transfer (hub.transfer), or left (hub.leave)
	away    bool // waiting for its lock: the others do not wait for it (hub.away)
	late    bool // its lock came after the others' transfer began: it transfers on its own
	// content is what the transfer writes content through: the target's batch view
	// (store.Batcher) or the target; flush makes the batch durable (nil: no batch), and written
	// lists the paths written through it, which a failed flush takes back out of the state.
	content store.Target
	flush   func(context.Context) error
	written []string

	// lock is the run's lease: every write readers see is fenced by it (nil: none, a dry run).
	lock     *TargetLock
	tookOver bool // the lease was taken over from a run that never released it

	cat      *Catalogue     // upstream's catalogue (readCatalogue)
	upstream []streams.Item // its items
	st       *State         // the mirror's record (readTarget), updated as the run applies its plan
	plan     *Plan
	rep      *Report
}

// newRun makes a run of its own (a hub of one target).
func newRun(src store.Source, dst store.Target, opts Options) *run {
	return newHub(context.Background(), src, []store.Target{dst}, opts).runs[0]
}

// settle fills the run's settings from its options, with the library's defaults.
func (r *run) settle() {
	opts := r.opts
	r.log, r.progress, r.now, r.concurrency = opts.Log, opts.Progress, opts.Now, opts.Concurrency
	r.rep = &Report{Curated: opts.Signer != nil}
	r.content = r.dst // until the transfer opens a batch view (openContent)
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.progress == nil {
		r.progress = &Progress{}
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.concurrency <= 0 {
		r.concurrency = DefaultConcurrency
	}
}

// do runs the stages.
func (r *run) do(ctx context.Context) (*Report, error) {
	defer r.hub.leave(r) // a run that never comes to the transfer does not hold the others back
	stage := startStages(r.rep, r.now)
	if !r.opts.DryRun {
		lockOpts := r.opts.Lock
		if lockOpts.Log == nil {
			lockOpts.Log = r.log
		}
		waited := false
		lockOpts.onWait = func() { waited = true; r.hub.away(r) }
		lock, lctx, err := AcquireLock(ctx, r.dst, lockOpts)
		if waited {
			r.hub.back(r)
		}
		if err != nil {
			return nil, err
		}
		defer func() {
			if rerr := lock.Release(); rerr != nil {
				r.log.Warn("could not release the lock", "error", rerr)
			}
		}()
		ctx = lctx
		r.lock, r.tookOver = lock, lock.TookOver()
	}

	// Reality over the record: every run lists the target once (one request per 1,000 objects
	// on S3) and plans from what it really holds. A recorded object that is missing, or whose
	// size or ETag is not what the state recorded, is not held: the plan fetches it (or checks
	// it) again before anything is published, and a metadata object in the same case is
	// rewritten (State.isPublished). The listing depends on nothing else read here, so it
	// runs while the catalogue and the state are read.
	var listed map[string]store.Info
	var listErr error
	listCtx, stopListing := context.WithCancel(ctx)
	var listing gosync.WaitGroup
	listing.Go(func() { listed, listErr = listTarget(listCtx, r.dst) })
	defer func() { stopListing(); listing.Wait() }()

	if err := r.readCatalogue(ctx); err != nil {
		return nil, err
	}
	stage("read catalogue")
	if err := r.readTarget(ctx, func() (map[string]store.Info, error) { listing.Wait(); return listed, listErr }); err != nil {
		return nil, err
	}
	stage("read target")
	if err := r.makePlan(ctx); err != nil {
		if r.rep.Plan == nil {
			return nil, err
		}
		return r.rep, err
	}
	stage("plan")
	if r.opts.DryRun {
		return r.rep, nil
	}
	r.adopt()

	if !r.opts.NoItemDownload {
		terr := r.transfer(ctx)
		stage("transfer")
		if terr != nil {
			// Keep what did arrive verified, so the next run does not fetch it again; publish nothing.
			if err := r.saveAfterFailure(); err != nil {
				terr = errors.Join(terr, err)
			}
			return r.rep, terr
		}
	}

	r.progress.setPhase(PhasePublish)
	if err := r.publish(ctx); err != nil {
		if serr := r.saveAfterFailure(); serr != nil {
			err = errors.Join(err, serr)
		}
		return r.rep, err
	}
	if err := r.writeFreshness(ctx); err != nil {
		return r.rep, err
	}
	stage("publish metadata")

	r.progress.setPhase(PhaseCleanUp)
	if err := r.record(ctx); err != nil {
		return r.rep, err
	}
	if err := r.collect(ctx); err != nil {
		return r.rep, err
	}
	stage("garbage collection")
	if r.lock != nil {
		r.lock.Succeeded()
	}
	return r.rep, nil
}

// readCatalogue reads upstream's catalogue (readUpstream): the run's own reading, or in a
// fan-out run the one reading all its targets share.
func (r *run) readCatalogue(ctx context.Context) error {
	var cat *Catalogue
	var upstream []streams.Item
	var err error
	if r.hub.upstream != nil {
		cat, upstream, err = r.hub.upstream()
	} else {
		cat, upstream, err = readUpstream(ctx, r.guardRate(r.src), r.opts, r.concurrency)
	}
	if err != nil {
		return err
	}
	r.cat, r.upstream = cat, upstream
	return nil
}

// readUpstream reads and verifies upstream's catalogue, with its items, and refuses a selection
// that matches nothing (unless AllowEmpty). It depends on upstream and the options alone, not on
// any target.
func readUpstream(ctx context.Context, src store.Source, opts Options, concurrency int) (*Catalogue, []streams.Item, error) {
	cat, err := LoadCatalogue(ctx, src, opts.StartPath, opts.Verification, opts.MetadataLimit, concurrency)
	if err != nil {
		return nil, nil, err
	}
	if err := checkMetadataKeys(cat); err != nil {
		return nil, nil, err
	}
	upstream := cat.Items()
	if !opts.AllowEmpty {
		if err := CheckSelection(upstream, opts.Filters, opts.FilterGroups); err != nil {
			return nil, nil, err
		}
	}
	cat.keepForMode(opts.Signer != nil)
	return cat, upstream, nil
}

// readTarget reads the mirror's state and takes the target's listing from list.
func (r *run) readTarget(ctx context.Context, list func() (map[string]store.Info, error)) error {
	st, err := LoadState(ctx, r.dst)
	if err != nil {
		return err
	}
	listed, err := list()
	if err != nil {
		return err
	}
	st.noteListing(listed)
	r.st = st
	return nil
}

// makePlan decides (MakePlan) and refuses a plan that must not be carried out. The plan's
// reconciliation of the record with the listing is taken into the state at once: what the
// listing does not bear out is neither trusted nor deleted from then on.
func (r *run) makePlan(ctx context.Context) error {
	plan := MakePlan(PlanInput{
		Upstream:       r.upstream,
		Filters:        r.opts.Filters,
		FilterGroups:   r.opts.FilterGroups,
		Max:            r.opts.Max,
		Keep:           r.opts.Keep,
		Prune:          r.opts.Prune,
		Held:           r.st.Held,
		Listed:         r.st.listed,
		Objects:        r.st.Objects,
		Unreferenced:   r.st.Unreferenced,
		Now:            r.now(),
		Grace:          r.opts.GCGrace,
		MetadataOnly:   r.opts.NoItemDownload,
		VerifyExisting: r.opts.VerifyExisting,
		WholeVersions:  r.opts.Signer != nil,
	})
	r.plan = plan
	r.st.Objects = plan.Objects
	for _, key := range plan.Drifted {
		delete(r.st.Unreferenced, key)
	}
	r.rep.Drifted = plan.Drifted
	for _, key := range plan.Drifted {
		r.log.Warn("the target no longer holds this object as recorded (deleted or replaced behind the mirror's back)", "path", key)
	}
	if err := CheckControlPaths(plan.Held, controlKeys(r.cat)); err != nil {
		return err
	}
	// What is held does not depend on what the target has: refuse oversized items now, before
	// anything in the target is written.
	if err := checkSizes(plan.Held, r.opts.maxFileSize()); err != nil {
		r.rep.Plan = plan
		return err
	}
	if n := len(plan.Widened); n > 0 {
		w := plan.Widened[0]
		r.log.Warn("curated mode keeps versions whole: items the filters leave out are mirrored too, because a client such as MAAS rejects a products file in which a version lacks some of its items",
			"items_added", n, "example", w.Product+" "+w.Version+" "+w.Item)
	}
	if !r.opts.DryRun && (r.tookOver || r.st.saved == nil || r.opts.VerifyExisting || len(plan.Fetch) > 0) {
		// Holding the lock, this is the only writer: what a killed run left (temporary files,
		// incomplete multipart uploads) can go. Only a run whose lease was taken over can have
		// left any; a run with work to do sweeps as well, which an up-to-date run skips to
		// stay at its few requests.
		cleanLeftovers(ctx, r.dst, r.log)
	}
	r.rep.Plan = plan
	r.log.Info("plan", "items_added", len(plan.Added), "items_removed", len(plan.Removed), "items_kept", plan.Kept,
		"files_to_fetch", len(plan.Fetch), "bytes_to_fetch", plan.FetchBytes())
	return nil
}

// adopt records the objects the plan adopts (Plan.Adopt) as the mirror's own.
func (r *run) adopt() {
	for key, obj := range r.plan.Adopt {
		if _, recorded := r.st.Objects[key]; recorded {
			continue
		}
		r.st.Objects[key] = obj
		r.rep.Adopted++
	}
}

// record saves the state the published metadata now promises: the plan's Held (a
// metadata-only run fetched nothing, so it holds what it held before), and since when each
// object the plan found unreferenced has been so (now for those that just became so).
func (r *run) record(ctx context.Context) error {
	if !r.opts.NoItemDownload {
		r.st.Held = r.plan.Held
	}
	r.st.Unreferenced = r.plan.stamps(r.now())
	for key := range r.st.Unreferenced {
		if _, owned := r.st.Objects[key]; !owned { // metadata now (putMeta)
			delete(r.st.Unreferenced, key)
		}
	}
	for _, key := range r.plan.Pending {
		if _, owned := r.st.Objects[key]; owned {
			r.rep.PendingDeletion++
		}
	}
	return saveState(ctx, r.dst, r.st, r.lock.Fence)
}

// collect deletes what the plan released (Plan.Due), once the metadata that no longer
// references it is published and recorded.
func (r *run) collect(ctx context.Context) error {
	deleted, err := deleteReleased(ctx, r.dst, r.st, r.plan.Due, r.lock, r.log)
	r.rep.Deleted = append(r.rep.Deleted, deleted...)
	return err
}

// saveAfterFailure records verified objects after a failed run, with a context of its own so
// that an interrupted run still records what it finished. It is fenced like every other save: a
// run that lost its lease (the likely reason it failed) saves nothing, and a state another run
// wrote since this one read it is never overwritten. The Held recorded is the one the run
// started with; objects it does not reference are recorded as unreferenced (since now when new).
func (r *run) saveAfterFailure() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owned := make(map[string]bool, len(r.st.Objects))
	for key := range r.st.Objects {
		owned[key] = true
	}
	r.st.Unreferenced = planRelease(r.st.Held, owned, r.st.Unreferenced, r.now(), -1).stamps(r.now())
	return saveState(ctx, r.dst, r.st, r.lock.Fence)
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

// fence checks that the run still holds its lease (TargetLock.Fence) before a write that
// readers or the next run see; what names the write for the message.
func fence(ctx context.Context, lock *TargetLock, what string) error {
	if err := lock.Fence(ctx); err != nil {
		return fmt.Errorf("not %s: %w", what, err)
	}
	return nil
}
