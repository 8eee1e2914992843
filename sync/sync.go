// Package sync mirrors a SimpleStreams source into a target store: read and verify the source
// catalogue, plan (a pure function of what upstream offers and what the mirror holds), transfer
// each missing path once, in parallel, verified while streaming, publish metadata (products
// files, then the index), record the state, and only then delete what nothing has referenced for
// longer than the grace period.
package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/ranged"
	"github.com/ssmirror/ssmirror/streams"
)

// DefaultGCGrace is how long an object nothing references is kept before it is deleted. It has
// to outlive every reader that may still hold an older generation of the metadata: a CDN caching
// the index (DefaultMetadataCacheControl: 5 minutes), a MAAS region that syncs hourly and then
// spends hours downloading a release over a slow link, and racks that sync from the region every
// 5 minutes. A day covers all of them with room; the cost is one superseded version per product
// kept for a day.
const DefaultGCGrace = 24 * time.Hour

// Cache-Control defaults: metadata changes at every publish, content never changes at a path.
const (
	DefaultMetadataCacheControl = "public, max-age=300"
	DefaultContentCacheControl  = "public, max-age=31536000, immutable"
)

// Options configure a run.
type Options struct {
	// StartPath is the metadata file to start from (default streams/v1/index.sjson).
	StartPath    string
	Verification Verification
	Filters      streams.Filters
	// FilterGroups select items matching any one group (see PlanInput.FilterGroups).
	FilterGroups []streams.Filters
	Max          int
	Keep         bool
	// AllowEmpty lets a run go on when the filters (or a filter group) select no item upstream;
	// otherwise such a run fails before it writes anything (see CheckSelection).
	AllowEmpty bool
	// Prune releases what the current selection does not cover.
	Prune bool
	// DryRun plans and reports without changing anything.
	DryRun bool
	// NoItemDownload publishes metadata without fetching content (verbatim mode only).
	NoItemDownload bool
	// Signer, when set, selects curated mode: the catalogue is rewritten to list exactly what the
	// mirror holds and signed with this key.
	Signer *sign.Signer
	// Concurrency is the number of files transferred at once (default 4).
	Concurrency int
	// GCGrace is how long an unreferenced object is kept (default DefaultGCGrace; negative: never delete).
	GCGrace time.Duration
	// VerifyExisting re-reads objects already present instead of trusting recorded hashes.
	VerifyExisting bool
	// MetadataLimit caps one metadata file's size (default DefaultMetadataLimit).
	MetadataLimit int64
	// MaxFileSize refuses, before anything is written, a selection holding an item declared
	// larger (0: DefaultMaxFileSize; negative: no limit).
	MaxFileSize int64
	// MinRate is the slowest a file may arrive, in bytes per second: each file must be in within
	// FileDeadlineBase plus its size at this rate (0: DefaultMinRate; negative: no deadline).
	MinRate int64
	// FileDeadlineBase is the time every file gets on top of its size at MinRate (0:
	// DefaultFileDeadlineBase).
	FileDeadlineBase time.Duration
	// MetadataCacheControl and ContentCacheControl override the Cache-Control defaults.
	MetadataCacheControl string
	ContentCacheControl  string
	// Progress, when set, is told about transfers as they happen.
	Progress *Progress
	// Log receives what the run does (nil: nothing is logged).
	Log *slog.Logger
	// Now is the clock (default time.Now); tests move it to pass the grace period.
	Now func() time.Time
	// Lock configures the target's lease lock (one writer per target). Dry runs take no lock.
	Lock LockOptions
	// RangeStreams is the most range streams (connections, each fetching one chunk at a time)
	// one large file is given from a source that serves bounded ranges (HTTP), besides its own
	// connection; the chunks are handed on in order so the file is still hashed and uploaded as
	// one stream. 0 means DefaultRangeStreams; 1 fetches every file with one request. Files
	// shorter than four chunks always take one request.
	RangeStreams int
	// RangeChunk is the size of one range (0: DefaultRangeChunk). Each range stream holds one
	// chunk in memory.
	RangeChunk int64
	// RangeConnections is how many range streams the files of a run share (0: RangeFiles ×
	// RangeStreams). Every large file starts on one connection of its own; while its connection
	// brings less than about 48 MiB/s and streams are free it is given more, the file on the
	// fewest streams (then with the most bytes left) first, and a stream a file no longer needs
	// goes to another. On a link found that slow, streams no large file wants carry more files
	// at once than Concurrency, one file each. A run opens at most Concurrency +
	// RangeConnections connections to the source and holds at most RangeConnections chunks.
	RangeConnections int
	// RangeFiles only sizes the default RangeConnections (0: DefaultRangeFiles): it no longer
	// bounds the files fetched in ranges, every large file in flight may be.
	RangeFiles int

	// OnTransfer, when set, is called as the transfer stage starts with the most bytes of
	// buffers the stage may hold at once (the ranged downloads' budget and the target's
	// BufferBudget); the function it returns (nil: none) is called when the stage ends. A command,
	// which owns its process, sets a soft memory limit with it (cmd/ssmirror); the library itself
	// changes no process-wide setting.
	OnTransfer func(buffers int64) (done func())

	ranged *ranged.Pool // the run's range streams, made on first use (Options.rangeParams)
	lock   *TargetLock  // the run's lease: every write readers see is fenced by it (nil: none)
}

// fence checks that the run still holds its lease (TargetLock.Fence) before a write that
// readers or the next run see; what names the write for the message.
func (o *Options) fence(ctx context.Context, what string) error {
	if err := o.lock.Fence(ctx); err != nil {
		return fmt.Errorf("not %s: %w", what, err)
	}
	return nil
}

func (o *Options) defaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.GCGrace == 0 {
		o.GCGrace = DefaultGCGrace
	}
	if o.MetadataCacheControl == "" {
		o.MetadataCacheControl = DefaultMetadataCacheControl
	}
	if o.ContentCacheControl == "" {
		o.ContentCacheControl = DefaultContentCacheControl
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
}

// Report says what a run did.
type Report struct {
	Plan *Plan
	// Curated is true when the catalogue was rewritten and signed with the operator's key.
	Curated bool
	// Fetched counts objects downloaded, Copied objects copied inside the target, Adopted
	// objects found already present and verified.
	Fetched, Copied, Adopted  int
	FetchedBytes, CopiedBytes int64
	// Drifted lists, sorted, the content objects the mirror had recorded that the target's
	// listing showed missing or replaced (another size or ETag): not held any more. Those still
	// referenced are in the plan's Fetch, so the run brings them back before it publishes.
	Drifted []string
	// MetadataWritten lists the metadata objects written, in order.
	MetadataWritten []string
	// Deleted lists the objects garbage-collected, and metadata forms the mirror wrote before
	// that upstream no longer offers (removeStaleForms).
	Deleted []string
	// PendingDeletion counts unreferenced objects still within the grace period.
	PendingDeletion int
	// Stages times each stage.
	Stages []Stage
}

// Stage is one timed part of a run.
type Stage struct {
	Name     string
	Duration time.Duration
}

// ErrMetadataOnlyCurated is Run's error for Options with both NoItemDownload and a Signer.
var ErrMetadataOnlyCurated = errors.New("a metadata-only run (NoItemDownload) cannot curate (Signer): a curated catalogue lists only what the mirror holds")

// Run mirrors src into dst.
func Run(ctx context.Context, src, dst store.Store, opts Options) (*Report, error) {
	opts.defaults()
	rep := &Report{Curated: opts.Signer != nil}
	if opts.NoItemDownload && opts.Signer != nil {
		return nil, ErrMetadataOnlyCurated
	}
	stage := startStages(rep, opts.Now)

	tookOver := false
	if !opts.DryRun {
		lock, lctx, err := AcquireLock(ctx, dst, opts.Lock)
		if err != nil {
			return nil, err
		}
		defer func() {
			if rerr := lock.Release(); rerr != nil {
				opts.Log.Warn("could not release the lock", "error", rerr)
			}
		}()
		ctx = lctx
		tookOver = lock.TookOver()
		opts.lock = lock
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
	listing.Go(func() { listed, listErr = listTarget(listCtx, dst) })
	defer func() { stopListing(); listing.Wait() }()

	cat, err := LoadCatalogue(ctx, guardRate(src, &opts), opts.StartPath, opts.Verification, opts.MetadataLimit, opts.Concurrency)
	if err != nil {
		return nil, err
	}
	stage("read catalogue")
	if err := checkMetadataKeys(cat); err != nil {
		return nil, err
	}
	upstream := cat.Items()
	if !opts.AllowEmpty {
		if err := CheckSelection(upstream, opts.Filters, opts.FilterGroups); err != nil {
			return nil, err
		}
	}
	cat.keepForMode(opts.Signer != nil)

	st, err := LoadState(ctx, dst)
	if err != nil {
		return nil, err
	}
	listing.Wait()
	if listErr != nil {
		return nil, listErr
	}
	present, drifted := st.reconcileListing(listed)
	stage("read target")
	rep.Drifted = drifted
	for _, key := range drifted {
		opts.Log.Warn("the target no longer holds this object as recorded (deleted or replaced behind the mirror's back)", "path", key)
	}
	plan := MakePlan(PlanInput{
		Upstream:       upstream,
		Filters:        opts.Filters,
		FilterGroups:   opts.FilterGroups,
		Max:            opts.Max,
		Keep:           opts.Keep,
		Prune:          opts.Prune,
		Held:           st.Held,
		Present:        present,
		VerifyExisting: opts.VerifyExisting,
		WholeVersions:  opts.Signer != nil,
	})
	if err := CheckControlPaths(plan.Held, controlKeys(cat)); err != nil {
		return nil, err
	}
	// What is held does not depend on what the target has: refuse oversized items now, before
	// anything in the target is written.
	if err := checkSizes(plan.Held, opts.maxFileSize()); err != nil {
		rep.Plan = plan
		return rep, err
	}
	if n := len(plan.Widened); n > 0 {
		w := plan.Widened[0]
		opts.Log.Warn("curated mode keeps versions whole: items the filters leave out are mirrored too, because a client such as MAAS rejects a products file in which a version lacks some of its items",
			"items_added", n, "example", w.Product+" "+w.Version+" "+w.Item)
	}
	if !opts.DryRun && (tookOver || st.saved == nil || opts.VerifyExisting || len(plan.Fetch) > 0) {
		// Holding the lock, this is the only writer: what a killed run left (temporary files,
		// incomplete multipart uploads) can go. Only a run whose lease was taken over can have
		// left any; a run with work to do sweeps as well, which an up-to-date run skips to
		// stay at its few requests.
		cleanLeftovers(ctx, dst, opts.Log)
	}
	rep.Plan = plan
	stage("plan")
	opts.Log.Info("plan", "items_added", len(plan.Added), "items_removed", len(plan.Removed), "items_kept", plan.Kept,
		"files_to_fetch", len(plan.Fetch), "bytes_to_fetch", plan.FetchBytes())
	if opts.DryRun {
		return rep, nil
	}
	if !opts.VerifyExisting {
		adoptVerified(st, plan.Held, present, rep)
	}

	if !opts.NoItemDownload {
		terr := transferAll(ctx, src, dst, plan.Fetch, st, rep, &opts)
		stage("transfer")
		if terr != nil {
			// Keep what did arrive verified, so the next run does not fetch it again; publish nothing.
			if err := saveAfterFailure(dst, st, &opts); err != nil {
				terr = errors.Join(terr, err)
			}
			return rep, terr
		}
	}

	opts.Progress.setPhase(PhasePublish)
	if err := publish(ctx, dst, cat, plan.Held, st, rep, &opts); err != nil {
		if serr := saveAfterFailure(dst, st, &opts); serr != nil {
			err = errors.Join(err, serr)
		}
		return rep, err
	}
	stage("publish metadata")

	// The published metadata now promises plan.Held: record it, then release what it no longer
	// needs. A metadata-only run fetched nothing, so it holds what it held before.
	if !opts.NoItemDownload {
		st.Held = plan.Held
	}
	markUnreferenced(st, opts.Now())
	opts.Progress.setPhase(PhaseCleanUp)
	if err := saveState(ctx, dst, st, opts.lock.Fence); err != nil {
		return rep, err
	}
	if err := collect(ctx, dst, st, rep, &opts); err != nil {
		return rep, err
	}
	stage("garbage collection")
	if opts.lock != nil {
		opts.lock.Succeeded()
	}
	return rep, nil
}

// saveAfterFailure records verified objects after a failed run, with a context of its own so
// that an interrupted run still records what it finished. It is fenced like every other save: a
// run that lost its lease (the likely reason it failed) saves nothing, and a state another run
// wrote since this one read it is never overwritten.
func saveAfterFailure(dst store.Store, st *State, opts *Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	markUnreferenced(st, opts.Now())
	return saveState(ctx, dst, st, opts.lock.Fence)
}

// listPresent lists the target once and joins it with the recorded objects (reconcileListing).
func listPresent(ctx context.Context, dst store.Store, st *State) (present map[string]Presence, drifted []string, err error) {
	listed, err := listTarget(ctx, dst)
	if err != nil {
		return nil, nil, err
	}
	present, drifted = st.reconcileListing(listed)
	return present, drifted, nil
}

// listTarget lists every object of the target, by key.
func listTarget(ctx context.Context, dst store.Store) (map[string]store.Info, error) {
	listed := map[string]store.Info{}
	err := dst.List(ctx, "", func(info store.Info) error {
		listed[info.Key] = info
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", store.Describe(dst), err)
	}
	return listed, nil
}

// reconcileListing joins the target's listing with the recorded objects (reconcile): what is
// there, its verified hash when known, and whether the mirror owns it. Recorded objects that are
// missing or were replaced are forgotten (the mirror neither trusts nor deletes them) and
// returned, sorted, as drifted. The listing is kept in st.listed for the metadata checks.
func (st *State) reconcileListing(listed map[string]store.Info) (present map[string]Presence, drifted []string) {
	st.listed = listed
	present, drifted = reconcile(st.listed, st.Objects)
	for _, key := range drifted {
		delete(st.Unreferenced, key)
	}
	// Metadata recorded without an ETag (by an older version, or from a write that returned
	// none) takes the listed one when the size matches, as content does (presenceOf): the
	// trust the record had, without a rewrite at every run.
	for key, pub := range st.Published {
		if info, ok := st.listed[key]; ok && pub.ETag == "" && info.Size == pub.Size {
			pub.ETag = info.ETag
			st.Published[key] = pub
		}
	}
	return present, drifted
}

// adoptVerified records as the mirror's own the held content objects that the target holds
// with the catalogue's size and a sha256 the store itself recorded for them (a directory's
// xattr), but that the state does not record: a run killed before it saved its state wrote
// them. The plan trusts them without reading them, as it would a recorded object; without
// this they would never be collected once nothing references them.
func adoptVerified(st *State, held Held, present map[string]Presence, rep *Report) {
	for _, hv := range held {
		for _, hi := range hv {
			if hi.Path == "" || hi.SHA256 == "" {
				continue
			}
			p, ok := present[hi.Path]
			if !ok || p.Owned || p.Size != hi.Size || !strings.EqualFold(p.SHA256, hi.SHA256) {
				continue
			}
			if _, recorded := st.Objects[hi.Path]; recorded {
				continue
			}
			st.Objects[hi.Path] = Object{Size: hi.Size, SHA256: strings.ToLower(hi.SHA256), ETag: st.listed[hi.Path].ETag}
			rep.Adopted++
		}
	}
}

// markUnreferenced stamps owned objects nothing held references with the time they became
// unreferenced, and clears the stamp of those referenced again.
func markUnreferenced(st *State, now time.Time) {
	refs := st.Held.Paths()
	for key := range st.Objects {
		if refs[key] > 0 {
			delete(st.Unreferenced, key)
		} else if _, ok := st.Unreferenced[key]; !ok {
			st.Unreferenced[key] = now
		}
	}
	for key := range st.Unreferenced {
		if _, ok := st.Objects[key]; !ok {
			delete(st.Unreferenced, key)
		}
	}
}

// collect deletes owned objects unreferenced for longer than the grace period.
func collect(ctx context.Context, dst store.Store, st *State, rep *Report, opts *Options) error {
	if opts.GCGrace < 0 {
		rep.PendingDeletion = len(st.Unreferenced)
		return nil
	}
	now := opts.Now()
	var due []string
	for key, since := range st.Unreferenced {
		if now.Sub(since) >= opts.GCGrace {
			due = append(due, key)
		} else {
			rep.PendingDeletion++
		}
	}
	if len(due) == 0 {
		return nil
	}
	sort.Strings(due)
	var errs []error
	for _, key := range due {
		if err := opts.fence(ctx, "deleting "+key); err != nil {
			errs = append(errs, err)
			break
		}
		if err := dst.Delete(ctx, key); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(st.Objects, key)
		delete(st.Unreferenced, key)
		rep.Deleted = append(rep.Deleted, key)
		opts.Log.Info("deleted", "path", key)
	}
	if err := saveState(ctx, dst, st, opts.lock.Fence); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Backends that keep invisible leftovers of interrupted writes say how to clean them.
type (
	uploadAborter interface {
		AbortIncompleteUploads(ctx context.Context, olderThan time.Duration) (int, error)
	}
	tempCleaner interface {
		CleanTemp(ctx context.Context, olderThan time.Duration) (int, error)
	}
)

// cleanLeftovers aborts incomplete multipart uploads (S3) and removes temporary files
// (directory) that interrupted runs left. Failure to clean is logged, not fatal.
func cleanLeftovers(ctx context.Context, dst store.Store, log *slog.Logger) {
	var n int
	var err error
	switch d := dst.(type) {
	case uploadAborter:
		n, err = d.AbortIncompleteUploads(ctx, 0)
	case tempCleaner:
		n, err = d.CleanTemp(ctx, 0)
	default:
		return
	}
	if err != nil {
		log.Warn("could not clean up after an interrupted run", "error", err)
	} else if n > 0 {
		log.Info("cleaned up after an interrupted run", "leftovers", n)
	}
}

func startStages(rep *Report, now func() time.Time) func(string) {
	last := now()
	return func(name string) {
		t := now()
		rep.Stages = append(rep.Stages, Stage{name, t.Sub(last)})
		last = t
	}
}
