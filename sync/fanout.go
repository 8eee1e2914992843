package sync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	gosync "sync"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/ranged"
	"github.com/ssmirror/ssmirror/streams"
)

// A fan-out run (RunTargets) publishes one selection to several targets. Upstream's catalogue is
// read once; each target then has a run of its own, exactly as Run would do it (its lease, state,
// listing, reconciliation, plan, publish, record and deferred collection), so every guarantee of
// a single-target run holds for each target on its own. The runs meet once, at the transfer
// (hub.meet, a meeting): when every target has planned (or failed, or is waiting for its lock:
// away; one whose lock comes after the transfer began is late and has a delivery of its own),
// one delivery brings each file any of them needs in once for all of them, by the same path a
// run of one target takes (transfer.go): checked or copied inside each target, copied
// server-side from another target that holds it (store.CopierFrom), and otherwise fetched from
// upstream once, verified once as it streams, and written into every target that needs it at
// the same time (sync/internal/tee), each target's Put checking its own bytes.
//
// Failures are the target's own: a target whose lock, state or listing fails, whose writes fail,
// or that holds the others back too long (FanOutBuffer) fails and publishes nothing; the others
// go on and publish. Memory does not grow with the number of targets: the ranged reads' budget is
// the run's, the tee chunks' budget is the run's (sync/internal/tee), S3 targets send their parts from
// those chunks, and the S3 targets of a run share one part-buffer budget (cliconfig).

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

func newHub(ctx context.Context, src store.Source, dsts []store.Target, opts Options) *hub {
	opts = opts.settled()
	h := &hub{ctx: ctx, src: src, opts: opts, multi: len(dsts) > 1}
	h.meet = newMeeting(len(dsts), func(came []*dest) { h.deliver(came, h.multi) })
	h.ranged = gosync.OnceValue(func() *ranged.Pool {
		if opts.RangeConnections <= 0 {
			return nil
		}
		return ranged.NewPool(opts.RangeConnections, opts.RangeChunk, ranged.PoolOptions{
			MaxStreams: opts.RangeStreams, FastEnough: rangeFastEnough, Others: opts.Concurrency,
			Judged: func(j ranged.Judgement) { logJudgement(opts.Log, j) },
		})
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
		r := &run{opts: ro, src: src, dst: dst, hub: h, seat: len(h.runs), rep: &Report{Curated: opts.Signer != nil}}
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
