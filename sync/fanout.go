package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/ranged"
	"github.com/ssmirror/ssmirror/store/retry"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync/internal/tee"
)

// A fan-out run (RunTargets) publishes one selection to several targets. Upstream's catalogue is
// read once; each target then has a run of its own, exactly as Run would do it (its lease, state,
// listing, reconciliation, plan, publish, record and deferred collection), so every guarantee of
// a single-target run holds for each target on its own. The runs meet once, at the transfer
// (hub): when every target has planned (or failed, or is waiting for its lock: hub.away; one
// whose lock comes after the transfer began transfers on its own), each file any of them needs is brought in
// once for all of them, in this order, per target: checked where present (Fetch.Check), copied
// inside the target from another path with the same content (store.Copier), copied server-side
// from another target of the run that holds it (store.CopierFrom), and otherwise fetched from
// upstream: opened once, verified once as it streams (size and sha256, on the source's stream),
// and written into every target that needs it at the same time (tee), each target's Put checking
// its own bytes as for a single target.
//
// Failures are the target's own: a target whose lock, state or listing fails, whose writes fail,
// or that holds the others back too long (FanOutBuffer) fails and publishes nothing; the others
// go on and publish. Memory does not grow with the number of targets: the ranged reads' budget is
// the run's, the tee chunks' budget is the run's (tee.go), S3 targets send their parts from
// those chunks, and the S3 targets of a run share one part-buffer budget (cliconfig).

// DefaultFanOutBuffer is Options.FanOutBuffer's default: the run's budget of tee chunks.
// Measured with scripts/bench (the 1.5 GB bench stream from nginx into two MinIO buckets and a
// directory, on a shared 2-CPU machine, 2 runs each): 32 MiB peaks at 121 MB RSS in a median
// 11.7 s, 64 MiB at 153 MB in 10.5 s (one target: 93 MB, 4.3 s); no target given up on.
const DefaultFanOutBuffer = 32 << 20

// fanOutPatience is how long, in all, a target holding a file's chunks back (tee.deliver) may
// hold the others back on that file before it is given up on: a target that is only late for a
// moment (a pause of its process, a slow part) catches up; one that is steadily slower does not
// hold the others to its pace (a variable for tests).
var fanOutPatience = 5 * time.Second

// ErrFellBehind is the failure of a target of a fan-out run that held a file's chunks back, beyond
// its share of Options.FanOutBuffer, for longer than the patience: it is given up on for the
// run, which fails for it and publishes nothing there, while the others go on. Its next run
// fetches what it lacks.
var ErrFellBehind = tee.ErrFellBehind

// TargetResult is what a fan-out run did in one target.
type TargetResult struct {
	// Target says where the target is (store.Describe).
	Target string
	// Report is the target's run's report (nil when it failed before it began: lock, state).
	Report *Report
	// Err is why the target's run failed (nil: published).
	Err error
}

// FanOutReport says what a fan-out run did: a result per target, in the order given, and what
// was read from upstream.
type FanOutReport struct {
	Targets []TargetResult
	// UpstreamBytes counts the content bytes read from upstream (attempts that failed included):
	// a file written into several targets is read once.
	UpstreamBytes int64
}

// TargetsError is RunTargets' error when some targets failed: those that did not published.
type TargetsError struct {
	Failed  []TargetResult // the targets that failed, in the order given
	Targets int            // how many targets the run had
}

func (e *TargetsError) Error() string {
	if e.Targets == 1 && len(e.Failed) == 1 {
		return e.Failed[0].Target + ": " + e.Failed[0].Err.Error()
	}
	var b strings.Builder
	if len(e.Failed) == e.Targets {
		fmt.Fprintf(&b, "all %d targets failed:", e.Targets)
	} else {
		fmt.Fprintf(&b, "%d of %d targets failed (the others published):", len(e.Failed), e.Targets)
	}
	for _, f := range e.Failed {
		b.WriteString("\n  ")
		b.WriteString(f.Target)
		b.WriteString(": ")
		b.WriteString(strings.ReplaceAll(f.Err.Error(), "\n", "\n    "))
	}
	return b.String()
}

func (e *TargetsError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// RunTargets mirrors src into every target of dsts in one run: upstream is read once, each file
// is fetched once for all the targets that need it, and each target is published as Run would
// publish it alone. A target that fails does not stop the others. The report has a result per
// target; the error is nil when every target published, a *TargetsError naming the failed ones
// otherwise, or the reason nothing began (no target, a target given twice, bad options). The
// caller makes sure two targets are not one place under two names (the command compares
// locations): their runs would meet at the target's lock, and one would fail.
func RunTargets(ctx context.Context, src store.Source, dsts []store.Target, opts Options) (*FanOutReport, error) {
	if len(dsts) == 0 {
		return nil, errors.New("no target to mirror into")
	}
	if opts.NoItemDownload && opts.Signer != nil {
		return nil, ErrMetadataOnlyCurated
	}
	for i, dst := range dsts {
		for _, other := range dsts[:i] {
			if dst == other {
				return nil, fmt.Errorf("target %s is given twice", store.Describe(dst))
			}
		}
	}
	h := newHub(ctx, src, dsts, opts)
	out := &FanOutReport{Targets: make([]TargetResult, len(dsts))}
	var wg gosync.WaitGroup
	for i, r := range h.runs {
		wg.Go(func() {
			rep, err := r.do(ctx)
			out.Targets[i] = TargetResult{Target: store.Describe(r.dst), Report: rep, Err: err}
		})
	}
	wg.Wait()
	h.wait()
	out.UpstreamBytes = h.upstreamBytes.Load()
	var failed []TargetResult
	for _, t := range out.Targets {
		if t.Err != nil {
			failed = append(failed, t)
		}
	}
	if len(failed) > 0 {
		return out, &TargetsError{Failed: failed, Targets: len(dsts)}
	}
	return out, nil
}

// hub is what the runs of one RunTargets (or one Run) share: the one reading of upstream, the
// ranged reads' budget, the progress, and the transfer, which starts when every run has come to
// it (transfer) or ended before (leave).
type hub struct {
	ctx context.Context
	src store.Source
	// opts are the settled options (Options.settled): Log without a target, the one Progress.
	opts  Options
	runs  []*run
	multi bool

	// ranged gives the pool of range streams (ranged.Pool) every file of every target shares,
	// made on first use (nil when ranged downloads are off).
	ranged func() *ranged.Pool
	// upstream reads upstream's catalogue once for every run (nil for a run of its own, which
	// reads it itself, as it always did).
	upstream func() (*Catalogue, []streams.Item, error)

	mu      gosync.Mutex
	pending int    // runs that have neither come to the transfer nor ended
	joined  []*run // those that came
	started bool   // the transfer is begun (set with the decision to start): a run that comes later is late
	done    chan struct{}
	wg      gosync.WaitGroup

	upstreamBytes atomic.Int64

	// The fan-out's tee chunks: the run's budget, and a file's share of it (transferMany).
	teeBudget *tee.Budget
	teeShare  int64
}

// chunkHold is the most bytes of chunks a Put of a size-byte file into any of runs' targets
// holds before it can send anything (store.ChunkHolder; 0 for targets that copy what they read).
func (h *hub) chunkHold(size int64, runs []*run) int64 {
	var hold int64
	for _, r := range runs {
		if c, ok := store.As[store.ChunkHolder](r.content); ok {
			hold = max(hold, c.ChunkHold(size))
		}
	}
	return hold
}

func newHub(ctx context.Context, src store.Source, dsts []store.Target, opts Options) *hub {
	opts = opts.settled()
	h := &hub{ctx: ctx, src: src, opts: opts, multi: len(dsts) > 1, pending: len(dsts), done: make(chan struct{})}
	h.ranged = gosync.OnceValue(func() *ranged.Pool {
		if opts.RangeConnections <= 0 {
			return nil
		}
		return ranged.NewPool(opts.RangeConnections, opts.RangeChunk, ranged.PoolOptions{MaxStreams: opts.RangeStreams, FastEnough: rangeFastEnough})
	})
	for _, dst := range dsts {
		// Each run has the settled options with its own logger (naming its target in a fan-out)
		// for itself and its lease; the Progress is the one of the whole call.
		ro := opts
		if h.multi {
			ro.Log = ro.Log.With("target", store.Describe(dst))
		}
		if ro.Lock.Log == nil {
			ro.Lock.Log = ro.Log
		}
		r := &run{opts: ro, src: src, dst: dst, hub: h, content: dst, rep: &Report{Curated: opts.Signer != nil}}
		h.runs = append(h.runs, r)
	}
	first := h.runs[0]
	if h.multi {
		type upstream struct {
			cat   *Catalogue
			items []streams.Item
			err   error
		}
		read := gosync.OnceValue(func() upstream {
			cat, items, err := readUpstream(ctx, first.guardRate(src), opts)
			return upstream{cat, items, err}
		})
		h.upstream = func() (*Catalogue, []streams.Item, error) {
			u := read()
			return u.cat, u.items, u.err
		}
	}
	return h
}

// wait waits for the transfer to end.
func (h *hub) wait() { h.wg.Wait() }

// transfer is r's transfer stage: r waits for the other runs to plan (or end), then for the
// transfer of every run that came, and returns its own outcome. ctx is r's (its lease's).
func (h *hub) transfer(ctx context.Context, r *run) error {
	r.tctx = ctx
	r.openContent()
	if r.late {
		// The others' transfer began while r waited for its lock: r fetches what it needs on
		// its own, as a run of one target would.
		r.transferAll(ctx)
	} else {
		h.mu.Lock()
		r.arrived = true
		h.joined = append(h.joined, r)
		h.countDown()
		<-h.done
	}
	err := r.transferError(ctx)
	if ferr := r.closeContent(ctx); ferr != nil {
		err = errors.Join(err, ferr)
	}
	return err
}

// countDown takes one run off those the transfer waits for (called with h.mu held, which it
// releases), and starts the transfer when none is left and some run came to it.
func (h *hub) countDown() {
	h.pending--
	last := h.pending == 0 && len(h.joined) > 0
	h.started = h.started || last
	h.mu.Unlock()
	if last {
		h.start()
	}
}

// leave says that r ended without coming to the transfer (a no-op for a run that came).
func (h *hub) leave(r *run) {
	h.mu.Lock()
	if r.arrived || r.late {
		h.mu.Unlock()
		return
	}
	r.arrived = true
	h.countDown()
}

// away says that r waits for its lock (held by another run): the others go on to their
// transfer without waiting for it. Only in a fan-out: a run of one target just waits.
func (h *hub) away(r *run) {
	if !h.multi {
		return
	}
	h.mu.Lock()
	r.away = true
	h.countDown()
}

// back says that r's wait for its lock ended (taken or not): if the others' transfer has not
// begun, it is waited for again; otherwise r is late and transfers on its own.
func (h *hub) back(r *run) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !r.away {
		return
	}
	r.away = false
	if h.started {
		r.late = true
		return
	}
	h.pending++
}

func (h *hub) start() {
	h.wg.Go(func() {
		defer close(h.done)
		if !h.multi {
			r := h.joined[0]
			r.transferAll(r.tctx)
			return
		}
		h.transferMany()
	})
}

// part is one target's fetch of a file; want is a file and the targets that need it.
type part struct {
	r *run
	f Fetch
}

type want struct {
	f     Fetch
	parts []part
}

// transferMany brings in, Concurrency files at a time, every file the runs that came need, each
// once for all of them (transferFile).
func (h *hub) transferMany() {
	runs := h.runsJoined()
	var wants []*want
	byKey := map[string]*want{}
	for _, r := range runs {
		for _, f := range r.plan.Fetch {
			key := f.Path + "\x00" + f.SHA256 + "\x00" + f.SHA512 + "\x00" + f.MD5 + "\x00" + strconv.FormatInt(f.Size, 10)
			w := byKey[key]
			if w == nil {
				w = &want{f: f}
				byKey[key] = w
				wants = append(wants, w)
			}
			w.parts = append(w.parts, part{r, f})
		}
	}
	if len(wants) == 0 {
		return
	}
	var total int64
	dsts := make([]store.Target, len(runs))
	for i, r := range runs {
		dsts[i] = r.dst
	}
	for _, w := range wants {
		total += w.f.Size
	}
	h.opts.Progress.begin(len(wants), total)
	defer h.opts.Progress.end()
	// The files in flight (Concurrency, and as many more as borrowed range slots may carry:
	// eachFile) share one budget of tee chunks; each reserves its share before it opens the
	// source, and at least what its readers must hold to send a part.
	inFlight := min(h.opts.Concurrency, len(wants)) + h.borrowers(len(wants))
	budget := h.opts.FanOutBuffer
	h.teeShare = budget / int64(inFlight)
	for _, w := range wants {
		budget = max(budget, tee.Reservation(w.f.Size, 0, h.chunkHold(w.f.Size, runs)))
	}
	h.teeBudget = tee.NewBudget(budget)
	defer startTransfer(dsts, &h.opts, budget)()

	// Every file is tried (no cancellation on a failure), Concurrency at a time and more on
	// borrowed range slots, as in a run of its own (eachFile); a file no target still written
	// needs is skipped (transferFile).
	h.eachFile(h.ctx, len(wants), func(i int) {
		if anyWriting(runs) {
			h.transferFile(wants[i], runs)
		}
	})
}

// runsJoined are the runs that came to the transfer, in the order of the targets.
func (h *hub) runsJoined() []*run {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*run
	for _, r := range h.runs {
		for _, j := range h.joined {
			if j == r {
				out = append(out, r)
			}
		}
	}
	return out
}

// writing reports whether the transfer still writes into r's target: its lease holds and it has
// not been given up on.
func (r *run) writing() bool {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	return !r.givenUp && r.tctx.Err() == nil
}

func anyWriting(runs []*run) bool {
	for _, r := range runs {
		if r.writing() {
			return true
		}
	}
	return false
}

// holds reports whether r's target holds f as the mirror's own verified content.
func (r *run) holds(f Fetch) bool {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	obj, ok := r.st.Objects[f.Path]
	return ok && f.SHA256 != "" && obj.SHA256 == f.SHA256 && obj.Size == f.Size
}

// transferFile brings f into every target of w that is still written: what each can do by
// itself (prepare: check, copy inside), then server-side copies from a target that holds f, then
// one fetch from upstream for all the rest.
func (h *hub) transferFile(w *want, runs []*run) {
	f := w.f
	var live []part
	for _, p := range w.parts {
		if p.r.writing() {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return
	}
	if f.Size < 0 {
		// The plan refuses these (checkSizes); a negative size would turn the size check off.
		for _, p := range live {
			p.r.noteResult(p.r.tctx, p.f, transferResult{}, fmt.Errorf("fetching %s: %w: declared size %d", f.Path, ErrTooLarge, f.Size))
		}
		return
	}
	h.opts.Progress.startFile(f.Path, f.Size)
	defer h.opts.Progress.finishFile(f.Path)
	done := false
	note := func(p part, res transferResult, err error) {
		p.r.noteResult(p.r.tctx, p.f, res, err)
		done = done || err == nil
	}
	var need []part
	for _, p := range live {
		ctx, cancel := p.r.opts.withFileDeadline(p.r.tctx, f.Size)
		res, in, err := p.r.prepare(ctx, p.f, p.r.copySource(p.f))
		explainDeadline(p.r.tctx, ctx, &err)
		cancel()
		if err != nil || in {
			note(p, res, err)
			continue
		}
		need = append(need, p)
	}
	need = h.copyAcross(f, need, runs, note)
	switch {
	case len(need) == 1:
		p := need[0]
		ctx, cancel := p.r.opts.withFileDeadline(p.r.tctx, f.Size)
		res, err := p.r.fetch(ctx, p.f)
		explainDeadline(p.r.tctx, ctx, &err)
		cancel()
		note(p, res, err)
	case len(need) > 1:
		h.fetchTee(f, need, note)
	}
	if done {
		h.opts.Progress.fileDone()
	}
}

// copyAcross copies f server-side into each target of need that can copy it from a target of
// the run holding it (store.CopierFrom), and returns the targets still needing it. A copy that
// fails is logged, and the file fetched instead.
func (h *hub) copyAcross(f Fetch, need []part, runs []*run, note func(part, transferResult, error)) []part {
	if len(need) == 0 || f.SHA256 == "" {
		return need
	}
	var holders []*run
	for _, r := range runs {
		if r.writing() && r.holds(f) {
			holders = append(holders, r)
		}
	}
	if len(holders) == 0 {
		return need
	}
	var rest []part
next:
	for _, p := range need {
		if cf, ok := store.As[store.CopierFrom](p.r.dst); ok {
			for _, holder := range holders {
				if holder == p.r || !cf.CanCopyFrom(holder.dst) {
					continue
				}
				ctx, cancel := p.r.opts.withFileDeadline(p.r.tctx, f.Size)
				info, err := cf.CopyFrom(ctx, f.Path, holder.dst, f.Path, p.r.contentPut(p.f))
				cancel()
				if err == nil {
					h.opts.Progress.addPath(f.Path, f.Size)
					note(p, transferResult{"copied from", info.SHA256, info.ETag}, nil)
					continue next
				}
				p.r.opts.Log.Warn("server-side copy from another target failed; fetching instead", "path", f.Path, "from", store.Describe(holder.dst), "error", err)
			}
		}
		rest = append(rest, p)
	}
	return rest
}

// fetchTee fetches f from upstream once and writes it into every target of need at the same
// time, trying the download again (for the targets that are still written) when its checksum is
// wrong, as a single-target fetch does.
func (h *hub) fetchTee(f Fetch, need []part, note func(part, transferResult, error)) {
	put := need[0].r.contentPut(f)
	for attempt := 1; ; attempt++ {
		results, srcErr, opened := h.teeOnce(f, need, put)
		var again []part
		for i, p := range need {
			err := results[i].err
			switch {
			case err == nil:
				note(p, transferResult{"fetched", results[i].info.SHA256, results[i].info.ETag}, nil)
				continue
			case results[i].fromSource && opened && errors.Is(srcErr, store.ErrChecksum) && attempt < maxChecksumAttempts && p.r.writing():
				again = append(again, p)
				continue
			case errors.Is(err, ErrFellBehind):
				p.r.tmu.Lock()
				p.r.givenUp = true
				p.r.tmu.Unlock()
			}
			if attempt > 1 && results[i].fromSource {
				err = fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			note(p, transferResult{}, fmt.Errorf("fetching %s: %w", f.Path, err))
		}
		if len(again) == 0 {
			return
		}
		h.opts.Log.Warn("fetch failed; trying again", "path", f.Path, "attempt", attempt, "error", srcErr)
		if err := retry.Sleep(h.ctx, fetchBackoff(attempt)); err != nil {
			for _, p := range again {
				note(p, transferResult{}, fmt.Errorf("fetching %s: %w", f.Path, srcErr))
			}
			return
		}
		need = again
	}
}

// teeResult is one target's outcome of a tee: what its Put returned, and whether its failure is
// the source's (the stream failed, or its checksum was wrong).
type teeResult struct {
	info       store.Info
	err        error
	fromSource bool
}

// teeOnce opens f at upstream once and streams it into every target of parts at the same time,
// verifying the stream (size, sha256 or the catalogue's other hash) as it passes. srcErr is the
// stream's failure (nil when it was read whole and verified); opened says upstream answered.
func (h *hub) teeOnce(f Fetch, parts []part, put store.PutOptions) (results []teeResult, srcErr error, opened bool) {
	results = make([]teeResult, len(parts))
	parent := h.ctx
	// The file's share of the run's tee budget, before anything is opened: a file waits for it
	// holding nothing.
	runs := make([]*run, len(parts))
	for i, p := range parts {
		runs[i] = p.r
	}
	reserved, err := h.teeBudget.Reserve(parent, tee.Reservation(f.Size, h.teeShare, h.chunkHold(f.Size, runs)))
	if err != nil {
		for i := range results {
			results[i] = teeResult{err: err}
		}
		return results, nil, false
	}
	defer h.teeBudget.Release(reserved)
	ctx, cancel := h.opts.withFileDeadline(parent, f.Size)
	defer cancel()
	logRetry := func(attempt int, err error) {
		h.opts.Log.Warn("fetch failed; trying again", "path", f.Path, "attempt", attempt, "error", err)
	}
	rc, noted, err := h.runs[0].openFetch(ctx, h.src, retry.NewSource(h.src, sourcePolicy(logRetry)), f)
	if err != nil {
		explainDeadline(parent, ctx, &err)
		for i := range results {
			results[i] = teeResult{err: err, fromSource: true}
		}
		return results, err, false
	}
	defer noted() // after the Close below, as in a single target's fetch (fetchOnce)
	cr := newCountingReader(rc, h.opts.Progress, f.Path)
	v := store.NewVerifier(f.Path, newExtraCheck(f, cr), store.PutOptions{Size: f.Size, SHA256: f.SHA256})
	puts := make([]tee.Put, len(parts))
	for i, p := range parts {
		puts[i] = func(r io.Reader) (store.Info, error) {
			wctx, wcancel := p.r.opts.withFileDeadline(p.r.tctx, f.Size)
			defer wcancel()
			info, err := p.r.content.Put(wctx, f.Path, r, put)
			explainDeadline(p.r.tctx, wctx, &err)
			return info, err
		}
	}
	// v checks the sha256 before the readers get io.EOF: their Puts need not hash again.
	tres, srcErr := tee.Stream(v, rc, tee.Config{Limit: reserved, Budget: h.teeBudget, Patience: fanOutPatience, SHA256: f.SHA256}, puts)
	if srcErr != nil {
		explainDeadline(parent, ctx, &srcErr)
	}
	h.upstreamBytes.Add(cr.n)
	ok := false
	for i, r := range tres {
		results[i] = teeResult{info: r.Info, err: r.Err, fromSource: r.FromSource}
		if r.FromSource {
			results[i].err = srcErr
		}
		ok = ok || r.Err == nil
	}
	if !ok {
		cr.count(-cr.n) // the progress takes back what no target kept
	}
	return results, srcErr, true
}
