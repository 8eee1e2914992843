package sync

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/ranged"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync/internal/tee"
)

// The data of one call (Run or RunTargets): a run per target and the hub the runs share. What
// works on it is above this file: the stages (run.go and the files of each stage) and the
// call's assembly (fanout.go: newHub).

// run is one Run against one target. It works from the settled copy of the caller's Options
// (Options.settled: the library's defaults filled in once); what it holds (the lease) and what
// it builds up (the catalogue, the state, the plan, the report) live here. Its methods are the
// stages, in order (run.do): readCatalogue, readTarget, makePlan, transfer, publish, record,
// collect.
// The transfer stage's own state is not here but in the dest the stage makes (transfer.go).
//
// Only readCatalogue depends on upstream alone; everything after it belongs to the one target,
// so that a run per target can share one reading of upstream.
type run struct {
	// opts are the run's settled options (Options.settled), with its target's logger.
	opts Options
	src  store.Source
	dst  store.Target

	// hub is what the runs of one RunTargets share: upstream's catalogue and the transfer.
	hub *hub
	// seat is the run's number in its hub's meeting (hub.meet).
	seat int

	// lock is the run's lease: every write readers see is fenced by it (nil: none, a dry run).
	lock     *TargetLock
	tookOver bool // the lease was taken over from a run that never released it

	cat      *Catalogue     // upstream's catalogue (readCatalogue)
	upstream []streams.Item // its items
	st       *State         // the mirror's record (readTarget), updated as the run applies its plan
	plan     *Plan
	rep      *Report
}

// fanOutPatience is how long, in all, a target holding a file's chunks back (tee.Config) may
// hold the others back on that file beyond what its writing at MinRate accounts for (plus its
// parts in flight at MinRate) before it is given up on: a target that is only late for a
// moment (a pause of its process) catches up, and one that keeps up MinRate, however much
// slower than the others, is waited for; one that stalls or trickles below MinRate does not
// hold the others for longer (a variable for tests).
var fanOutPatience = 5 * time.Second

// ErrFellBehind is the failure of a target of a fan-out run that held a file's chunks back, beyond
// its share of Options.FanOutBuffer, for longer than the patience: it is given up on for the
// run, which fails for it and publishes nothing there, while the others go on. Its next run
// fetches what it lacks.
var ErrFellBehind = tee.ErrFellBehind

// hub is what the runs of one RunTargets (or one Run) share: the one reading of upstream, the
// ranged reads' budget, the progress, the meeting before the transfer and the delivery it
// starts (transfer.go).
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

	// meet is where the runs wait for each other before the transfer: once none is expected
	// any more, one delivery brings in what every run that came needs (transfer.go).
	meet *meeting[*dest]

	upstreamBytes atomic.Int64

	// smallSeen and smallSlow count the files smaller than a range chunk fetched whole, and how
	// many of them came slowly while their reader waited (noteRate).
	smallSeen, smallSlow atomic.Int64
}

// wait waits for the transfer to end.
func (h *hub) wait() { h.meet.wait() }
