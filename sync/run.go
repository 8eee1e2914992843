package sync

import (
	"context"
	"errors"
	gosync "sync"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
)

// The stages of a run, in order (do), and the steps of the first ones: reading upstream and the
// target, planning, recording. The transfer (transfer.go), the publish (publish.go) and the
// collection (gc.go) have files of their own.

// do runs the stages.
func (r *run) do(ctx context.Context) (*Report, error) {
	defer r.hub.meet.leave(r.seat) // a run that never comes to the transfer does not hold the others back
	stage := startStages(r.rep, r.opts.Now)
	if !r.opts.DryRun {
		lockOpts := r.opts.Lock
		waited := false
		lockOpts.onWait = func() { waited = true; r.hub.meet.goAway(r.seat) }
		lock, lctx, err := AcquireLock(ctx, r.dst, lockOpts)
		if waited {
			r.hub.meet.comeBack(r.seat)
		}
		if err != nil {
			return nil, err
		}
		defer func() {
			if rerr := lock.Release(); rerr != nil {
				r.opts.Log.Warn("could not release the lock", "error", rerr)
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

	r.opts.Progress.setPhase(PhasePublish)
	if err := r.publish(ctx); err != nil {
		if serr := r.saveAfterFailure(); serr != nil {
			err = errors.Join(err, serr)
		}
		return r.rep, err
	}
	if err := r.writeFreshness(ctx); err != nil {
		return r.rep, err
	}
	stage(StagePublish)

	r.opts.Progress.setPhase(PhaseCleanUp)
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
		cat, upstream, err = readUpstream(ctx, r.guardRate(r.src), r.opts)
	}
	if err != nil {
		return err
	}
	r.cat, r.upstream = cat, upstream
	r.rep.Source = cat.Source
	if n := len(cat.Source.LeftOut); n > 0 {
		r.opts.Log.Warn("the source (an ssmirror mirror) does not hold some selected items its catalogue lists: they are left out",
			"items", n, "example", cat.Source.LeftOut[0].String(), "filter_to_say_so", cat.Source.Hint)
	}
	return nil
}

// readUpstream reads and verifies upstream's catalogue, with its items, and refuses a selection
// that matches nothing (unless AllowEmpty). It depends on upstream and the options alone, not on
// any target. opts are settled.
func readUpstream(ctx context.Context, src store.Source, opts Options) (*Catalogue, []streams.Item, error) {
	// Hub and spoke (sourceheld.go): what the source holds, when it is an ssmirror mirror, read
	// while the catalogue is (one more request, no more round trips).
	var objects map[string]Object
	var found bool
	var recErr error
	recCtx, stopRecord := context.WithCancel(ctx)
	var record gosync.WaitGroup
	record.Go(func() { objects, found, recErr = readSourceRecord(recCtx, src, catalogueLimit(opts.MetadataLimit)) })
	defer func() { stopRecord(); record.Wait() }()

	cat, err := LoadCatalogue(ctx, src, opts.StartPath, opts.Verification, opts.MetadataLimit, opts.Concurrency)
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
	record.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	switch {
	case recErr != nil:
		cat.Source.Unreadable = recErr
	case found:
		cat.Source.Record = true
		upstream, cat.Source.LeftOut, cat.Source.Hint = keepHeld(upstream, objects, opts.Filters, opts.FilterGroups, opts.Signer != nil)
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
	return checkMode(r.dst, st, r.opts)
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
		Now:            r.opts.Now(),
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
		r.opts.Log.Warn("the target no longer holds this object as recorded (deleted or replaced behind the mirror's back)", "path", key)
	}
	if err := CheckControlPaths(plan.Held, controlKeys(r.cat)); err != nil {
		return err
	}
	// What is held does not depend on what the target has: refuse oversized items now, before
	// anything in the target is written.
	if err := checkSizes(plan.Held, r.opts.MaxFileSize); err != nil {
		r.rep.Plan = plan
		return err
	}
	// Published content is never overwritten in place (RewriteError): refused before anything
	// in the target is written, so no reader ever gets bytes the published metadata does not
	// name, whenever the run fails or is killed.
	if len(plan.Rewrites) > 0 {
		r.rep.Plan = plan
		return &RewriteError{Rewrites: plan.Rewrites, Target: store.Describe(r.dst)}
	}
	if n := len(plan.Widened); n > 0 {
		w := plan.Widened[0]
		r.opts.Log.Warn("curated mode keeps versions whole: items the filters leave out are mirrored too, because a client such as MAAS rejects a products file in which a version lacks some of its items",
			"items_added", n, "example", w.Product+" "+w.Version+" "+w.Item)
	}
	own, err := r.ownLeftovers(plan)
	if err != nil {
		r.rep.Plan = plan
		return err
	}
	if !r.opts.DryRun && (r.tookOver || r.st.saved == nil || r.opts.VerifyExisting || len(plan.Fetch) > 0) {
		// Holding the lock, this is the only writer of this target's keys: what a killed run
		// of it left (temporary files, incomplete multipart uploads) can go, and nothing else
		// (leftovers.go). Only a run whose lease was taken over can have left any; a run with
		// work to do sweeps as well, which an up-to-date run skips to stay at its few requests.
		cleanLeftovers(ctx, r.dst, own, r.opts.Log)
	}
	if r.cat.Source.Unreadable != nil && len(plan.Fetch) > 0 {
		if err := checkAtSource(ctx, r.src, plan, r.upstream, r.cat.Source.Unreadable, r.opts.Concurrency); err != nil {
			r.rep.Plan = plan
			return err
		}
	}
	r.rep.Plan = plan
	r.opts.Log.Info("plan", "items_added", len(plan.Added), "items_removed", len(plan.Removed), "items_kept", plan.Kept,
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
	mode := modeOf(r.opts)
	r.st.Mode = &mode
	r.st.Kept = nil
	r.st.Unreferenced = r.plan.stamps(r.opts.Now())
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
	recorded := recordedOf(r.st, r.plan.Due)
	deleted, err := deleteReleased(ctx, r.dst, r.st, r.plan.Due, r.lock, r.opts.Log)
	r.rep.Deleted = append(r.rep.Deleted, deleted...)
	f := freeDeleted(ctx, r.dst, deleted, recorded, r.opts.PurgeVersions, r.lock, r.opts.Log)
	r.rep.FreedBytes, r.rep.Versioning, r.rep.VersionsKept = f.bytes, f.versioning, f.kept
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
	r.st.Unreferenced = planRelease(r.st.Held, owned, r.st.Unreferenced, r.opts.Now(), -1).stamps(r.opts.Now())
	if r.plan != nil {
		// What this run fetched for the publish that did not happen is kept for the next run.
		for _, f := range r.plan.Fetch {
			if _, waits := r.st.Unreferenced[f.Path]; !waits || !owned[f.Path] {
				continue
			}
			if r.st.Kept == nil {
				r.st.Kept = map[string]time.Time{}
			}
			if _, ok := r.st.Kept[f.Path]; !ok {
				r.st.Kept[f.Path] = r.opts.Now().UTC()
			}
		}
	}
	return saveState(ctx, r.dst, r.st, r.lock.Fence)
}

func (r *run) guardRate(src store.Source) store.Source {
	if r.opts.MinRate < 0 {
		return src
	}
	return rateGuarded{src, r.opts.FileDeadlineBase, r.opts.MinRate, r.opts.Now}
}
