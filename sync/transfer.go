package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	gosync "sync"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/retry"
	"github.com/ssmirror/ssmirror/sync/internal/tee"
)

// The transfer stage brings every path the plan fetches into the target, each verified while
// it streams. There is one path for it, whatever the number of targets: a run makes its side
// of the stage (dest) and meets the other runs of its call (hub.meet); once none is expected
// any more, one delivery brings every file any of them needs into all of them, each file once
// (bringIn): per target, checked where present (Fetch.Check) or copied inside the target from
// another path with the same content (store.Copier); then copied server-side from another
// target of the delivery that holds it (store.CopierFrom); and otherwise fetched from upstream
// once (fetch): opened once, verified once as it streams, and written with a plain verified Put
// into one target, or at the same time into several (sync/internal/tee), each target's Put
// checking its own bytes. A run that comes back from waiting for its lock after the others'
// delivery began (a late run) has a delivery of its own. Run is a call of one run: its
// delivery has one dest.

// transfer is the run's transfer stage: it meets the other runs of its call, waits for the
// delivery of every run that came (or has its own when it is late), and returns its own
// outcome. Objects that arrive are recorded in the state as they complete (dest.note).
func (r *run) transfer(ctx context.Context) error {
	d := newDest(ctx, r)
	if late := r.hub.meet.come(r.seat, d); late {
		r.hub.deliver([]*dest{d}, false)
	}
	err := d.err()
	if ferr := d.closeContent(ctx); ferr != nil {
		err = errors.Join(err, ferr)
	}
	return err
}

// A delivery brings the files the plans of its dests fetch into them, each file once for all
// the dests that need it.
type delivery struct {
	h     *hub
	dests []*dest
	// The tee chunks' budget of the delivery, and a file's share of it (nil: no file goes to
	// several targets).
	teeBudget *tee.Budget
	teeShare  int64
}

// want is one file of a delivery: what upstream lists, and the legs that need it.
type want struct {
	f    Fetch
	legs []leg
}

// leg is one target's need of a file: its dest, and the file as its plan has it (whether to
// check it first is its own).
type leg struct {
	d *dest
	f Fetch
}

// deliver brings in, Concurrency files at a time, every file the plans of dests fetch (bringIn),
// each once for all of them. fanOut gives the delivery the run's budget of tee chunks
// (Options.FanOutBuffer): the delivery of a meeting of several targets.
func (h *hub) deliver(dests []*dest, fanOut bool) {
	var wants []*want
	byKey := map[string]*want{}
	for _, d := range dests {
		for _, f := range d.r.plan.Fetch {
			key := f.Path + "\x00" + f.SHA256 + "\x00" + f.SHA512 + "\x00" + f.MD5 + "\x00" + strconv.FormatInt(f.Size, 10)
			w := byKey[key]
			if w == nil {
				w = &want{f: f}
				byKey[key] = w
				wants = append(wants, w)
			}
			w.legs = append(w.legs, leg{d, f})
		}
	}
	if len(wants) == 0 {
		return
	}
	var total int64
	for _, w := range wants {
		total += w.f.Size
	}
	h.opts.Progress.begin(len(wants), total)
	defer h.opts.Progress.end()
	dl := &delivery{h: h, dests: dests}
	var teeBytes int64
	if fanOut {
		teeBytes, dl.teeShare = h.teeBudget(wants, dests)
		dl.teeBudget = tee.NewBudget(teeBytes)
	}
	// The targets' own transfer buffers count only when a delivery of one writes into them: a
	// fan-out delivery streams every file it fetches through its tee, even into one target, and
	// S3 targets send their parts from the tee's chunks, not from part buffers of their own.
	var targets []store.Target
	if !fanOut {
		for _, d := range dests {
			targets = append(targets, d.r.dst)
		}
	}
	defer startTransfer(targets, &h.opts, teeBytes)()

	// Every file is tried (no cancellation on a failure); a file no target still written needs
	// is skipped.
	h.eachFile(h.ctx, len(wants), func(i int) {
		if anyWriting(dests) {
			dl.bringIn(wants[i])
		}
	})
}

// teeBudget is the size of the tee chunks' budget of a fan-out delivery of wants into dests, and
// a file's share of it. The files in flight (Concurrency, and as many more as borrowed range
// slots may carry: eachFile) share one budget; each reserves its share (Options.FanOutBuffer
// over the files in flight) before it opens the source, but at least what its readers must hold
// to send a part (one part plus two chunks, tee.Reservation). The budget is
// Options.FanOutBuffer, raised to what Concurrency files of the largest such reservation need
// at once. Otherwise a file waits for its reservation while a worker is free (four files of one
// 8 MiB part plus two chunks do not fit in 32 MiB), and while a file waits none may borrow: the
// fan-out would keep a file fewer in flight, and so a part fewer per S3 target, than a run into
// one of its targets alone, and take a third longer where the links limit each connection.
func (h *hub) teeBudget(wants []*want, dests []*dest) (budget, share int64) {
	var most int64 // the largest reservation a file of wants needs
	for _, w := range wants {
		most = max(most, tee.Reservation(w.f.Size, 0, chunkHold(w.f.Size, dests)))
	}
	files := min(h.opts.Concurrency, len(wants))
	budget = max(h.opts.FanOutBuffer, int64(files)*most)
	return budget, h.opts.FanOutBuffer / int64(files+h.borrowers(len(wants)))
}

// chunkHold is the most bytes of chunks a Put of a size-byte file into any of dests' targets
// holds before it can send anything (store.ChunkHolder; 0 for targets that copy what they read).
func chunkHold(size int64, dests []*dest) int64 {
	var hold int64
	for _, d := range dests {
		if c, ok := store.As[store.ChunkHolder](d.content); ok {
			hold = max(hold, c.ChunkHold(size))
		}
	}
	return hold
}

// bringIn brings w's file into every leg still written: what each target can do by itself
// (prepare: check, copy inside), then server-side copies from a target that holds the file,
// then one fetch from upstream for all the rest.
func (dl *delivery) bringIn(w *want) {
	h, f := dl.h, w.f
	var live []leg
	for _, l := range w.legs {
		if l.d.writing() {
			live = append(live, l)
		}
	}
	if len(live) == 0 {
		return
	}
	if f.Size < 0 {
		// The plan refuses these (checkSizes); a negative size would turn the size check off.
		for _, l := range live {
			l.d.note(l.f, transferResult{}, fmt.Errorf("fetching %s: %w: declared size %d", f.Path, ErrTooLarge, f.Size))
		}
		return
	}
	h.opts.Progress.startFile(f.Path, f.Size)
	defer h.opts.Progress.finishFile(f.Path)
	done := false
	note := func(l leg, res transferResult, err error) {
		l.d.note(l.f, res, err)
		done = done || err == nil
	}
	var need []leg
	for _, l := range live {
		ctx, end := h.opts.withFileDeadline(l.d.ctx, f.Size)
		res, in, err := l.d.prepare(ctx, l.f)
		end(&err)
		if err != nil || in {
			note(l, res, err)
			continue
		}
		need = append(need, l)
	}
	need = dl.copyAcross(f, need, note)
	if len(need) > 0 {
		dl.fetch(f, need, note)
	}
	if done {
		h.opts.Progress.fileDone()
	}
}

// copyAcross copies f server-side into each leg of need whose target can copy it from a target
// of the delivery holding it (store.CopierFrom), and returns the legs still needing it. A copy
// that fails is logged, and the file fetched instead.
func (dl *delivery) copyAcross(f Fetch, need []leg, note func(leg, transferResult, error)) []leg {
	if len(need) == 0 || f.SHA256 == "" {
		return need
	}
	var holders []*dest
	for _, d := range dl.dests {
		if d.writing() && d.holds(f) {
			holders = append(holders, d)
		}
	}
	if len(holders) == 0 {
		return need
	}
	var rest []leg
next:
	for _, l := range need {
		if cf, ok := store.As[store.CopierFrom](l.d.r.dst); ok {
			for _, holder := range holders {
				if holder == l.d || !cf.CanCopyFrom(holder.r.dst) {
					continue
				}
				ctx, end := dl.h.opts.withFileDeadline(l.d.ctx, f.Size)
				info, err := cf.CopyFrom(ctx, f.Path, holder.r.dst, f.Path, l.d.contentPut(l.f))
				end(&err)
				if err == nil {
					dl.h.opts.Progress.addPath(f.Path, f.Size)
					note(l, transferResult{"copied from", info.SHA256, info.ETag}, nil)
					continue next
				}
				l.d.r.opts.Log.Warn("server-side copy from another target failed; fetching instead", "path", f.Path, "from", store.Describe(holder.r.dst), "error", err)
			}
		}
		rest = append(rest, l)
	}
	return rest
}

// fetch brings f from upstream into every leg of need (fetchOnce), within the file's deadline,
// trying the download again (for the legs still written) while its checksum is wrong, at most
// maxChecksumAttempts times. The source's opens are tried again by the retrying source
// (sourcePolicy).
func (dl *delivery) fetch(f Fetch, need []leg, note func(leg, transferResult, error)) {
	h := dl.h
	log := h.opts.Log
	if len(need) == 1 {
		log = need[0].d.r.opts.Log
	}
	logRetry := func(attempt int, err error) {
		log.Warn("fetch failed; trying again", "path", f.Path, "attempt", attempt, "error", err)
	}
	// In a fan-out delivery a file reserves its share of the tee budget before anything is
	// opened, whatever the number of its targets (it streams through the tee even into one): it
	// waits for it holding nothing.
	var reserved int64
	if dl.teeBudget != nil {
		var err error
		to := make([]*dest, len(need))
		for i, l := range need {
			to[i] = l.d
		}
		reserved, err = dl.teeBudget.Reserve(h.ctx, tee.Reservation(f.Size, dl.teeShare, chunkHold(f.Size, to)))
		if err != nil {
			for _, l := range need {
				note(l, transferResult{}, fmt.Errorf("fetching %s: %w", f.Path, err))
			}
			return
		}
		defer dl.teeBudget.Release(reserved)
	}
	// The download's context: one target's own, or the call's when several share it (each
	// target's Put then has its own).
	parent := h.ctx
	if len(need) == 1 {
		parent = need[0].d.ctx
	}
	ctx, end := h.opts.withFileDeadline(parent, f.Size)
	rsrc := retry.NewSource(h.src, sourcePolicy(logRetry))
	rest := need
	var opened bool
	var last error
	err := retry.Do(ctx, retry.Policy{
		Attempts:  maxChecksumAttempts,
		Backoff:   fetchBackoff,
		Permanent: func(err error) bool { return !opened || !errors.Is(err, store.ErrChecksum) },
		Notify:    logRetry,
	}, func(ctx context.Context) error {
		var results []tee.Result
		results, last, opened = dl.fetchOnce(ctx, f, rest, rsrc, reserved)
		var again []leg
		for i, l := range rest {
			switch res := results[i]; {
			case res.Err == nil:
				note(l, transferResult{"fetched", res.Info.SHA256, res.Info.ETag}, nil)
			case res.FromSource && l.d.writing():
				again = append(again, l) // the download's failure: tried again, or noted below
			default:
				if errors.Is(res.Err, tee.ErrFellBehind) {
					l.d.giveUp()
				}
				note(l, transferResult{}, fmt.Errorf("fetching %s: %w", f.Path, res.Err))
			}
		}
		if rest = again; len(rest) == 0 {
			return nil
		}
		return last
	})
	if re, ok := err.(*retry.Error); ok && err != last && re.Interrupted == nil && !errors.Is(last, store.ErrChecksum) {
		// Another failure after a bad checksum: the attempts counted here are not its own.
		err = last
	}
	end(&err)
	for _, l := range rest {
		note(l, transferResult{}, fmt.Errorf("fetching %s: %w", f.Path, err))
	}
}

// fetchOnce opens f at upstream once and streams it into every leg of to: in a delivery of one
// target with a plain Put (which hashes the bytes itself), in a fan-out delivery through a tee
// (of reserved bytes of chunks) into its legs at once, however many (one, when the other targets
// hold the file), which verifies the stream once (size, sha256 or the catalogue's other hash)
// while each target's Put checks its size. It returns each leg's outcome (with a plain Put, every
// failure counts as the download's: a Put cannot tell its reader's failures from its own), the
// download's failure, and whether upstream answered. Bytes counted in the progress by a
// download no target kept are taken back.
func (dl *delivery) fetchOnce(ctx context.Context, f Fetch, to []leg, rsrc store.Source, reserved int64) (results []tee.Result, srcErr error, opened bool) {
	h := dl.h
	rc, noted, err := h.openFetch(ctx, h.src, rsrc, f)
	if err != nil {
		results = make([]tee.Result, len(to))
		for i := range results {
			results[i] = tee.Result{Err: err, FromSource: true}
		}
		return results, err, false
	}
	defer noted() // after the Close
	cr := newCountingReader(rc, h.opts.Progress, f.Path)
	if dl.teeBudget == nil { // a delivery of one target
		l := to[0]
		info, err := l.d.content.Put(ctx, f.Path, newExtraCheck(f, cr), l.d.contentPut(l.f))
		rc.Close()
		results, srcErr = []tee.Result{{Info: info, Err: err, FromSource: true}}, err
	} else {
		puts := make([]tee.Put, len(to))
		for i, l := range to {
			puts[i] = func(gone context.Context, r io.Reader) (store.Info, error) {
				// Given up on (gone ends), the Put stops at once: nobody waits for it.
				ctx, cancel := context.WithCancelCause(l.d.ctx)
				defer cancel(nil)
				defer context.AfterFunc(gone, func() { cancel(context.Cause(gone)) })()
				ctx, end := h.opts.withFileDeadline(ctx, f.Size)
				info, err := l.d.content.Put(ctx, f.Path, r, l.d.contentPut(l.f))
				end(&err)
				if err != nil && l.d.givenUpOn() {
					err = tee.ErrFellBehind // the target was given up on for another file
				}
				return info, err
			}
		}
		v := store.NewVerifier(f.Path, newExtraCheck(f, cr), store.PutOptions{Size: f.Size, SHA256: f.SHA256})
		// v checks the sha256 before the readers get io.EOF: their Puts need not hash again. A
		// target holding the others back is waited for while it keeps up MinRate (DefaultMinRate
		// with no deadline).
		minRate := h.opts.MinRate
		if minRate < 0 {
			minRate = DefaultMinRate
		}
		results, srcErr = tee.Stream(v, rc, tee.Config{Limit: reserved, Budget: dl.teeBudget,
			Patience: fanOutPatience, MinRate: minRate, SHA256: f.SHA256}, puts)
	}
	h.upstreamBytes.Add(cr.n)
	kept := false
	for _, r := range results {
		kept = kept || r.Err == nil
	}
	if !kept {
		cr.count(-cr.n) // the progress takes back what no target kept
	}
	return results, srcErr, true
}

// eachFile calls do for 0 … n-1 (the files of a transfer, in order) until ctx ends: Concurrency
// workers take them in order, every file is tried. More files at once on a link that limits each
// connection: a transfer beyond Concurrency runs on a range stream slot no large file wants
// (ranged.Pool.Borrow), once some connection to the source was found slow; it gives the slot
// back after each file.
func (h *hub) eachFile(ctx context.Context, n int, do func(i int)) {
	work := make(chan int)
	var wg gosync.WaitGroup
	for range min(h.opts.Concurrency, n) {
		wg.Go(func() {
			for i := range work {
				do(i)
			}
		})
	}
	lendCtx, stopLending := context.WithCancel(ctx)
	if borrowers := h.borrowers(n); borrowers > 0 {
		pool := h.ranged()
		for range borrowers {
			wg.Go(func() {
				for {
					giveBack, ok := pool.Borrow(lendCtx)
					if !ok {
						return
					}
					i, more := <-work
					if !more {
						giveBack()
						return
					}
					do(i)
					giveBack()
				}
			})
		}
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	stopLending()
	wg.Wait()
}

// borrowers is how many of n files eachFile may run beyond Concurrency, on borrowed range
// slots: none unless ranged downloads are on and the source serves ranges.
func (h *hub) borrowers(n int) int {
	pool := h.ranged()
	if pool == nil || n <= h.opts.Concurrency {
		return 0
	}
	if _, ok := store.As[store.RangeOpener](h.src); !ok {
		return 0
	}
	return min(pool.Slots(), n-h.opts.Concurrency)
}
