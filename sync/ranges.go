package sync

import (
	"context"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/ranged"
)

// rangedMinChunks: a file shorter than this many chunks is fetched with one request; below it,
// the request per chunk costs more than the extra connections bring.
const rangedMinChunks = 4

// rangeFastEnough (bytes per second): a file whose own connection brings a whole chunk at least
// this fast gets no range streams; one connection is then as good as several (a loopback or a
// LAN), and ranges would only cost requests and copies. Nor does one whose chunks are late
// because its reader is busy (hashing, writing, a loaded CPU): only a connection that keeps its
// reader waiting is slow (ranged.PoolOptions.FastEnough). A variable so that tests over loopback
// can turn the gate off (0: every large file wants streams from its start).
var rangeFastEnough float64 = 48 << 20

// openRanged returns a reader fetching f from src on one connection and, while that connection
// is slow and the run's range streams are free, on more (ranged.Pool), or nil when that does not
// apply: the source cannot serve bounded ranges (only HTTP can; reading a directory in pieces
// gains nothing), ranged downloads are off, or the file is small.
func (h *hub) openRanged(ctx context.Context, src store.Source, f Fetch) io.ReadCloser {
	ro, ok := store.As[store.RangeOpener](src)
	if !ok {
		return nil
	}
	pool := h.ranged()
	if pool == nil || pool.Slots() == 0 || f.Size < rangedMinChunks*h.opts.RangeChunk {
		return nil
	}
	return pool.Open(ctx, ro, f.Path, f.Size, ranged.Options{Policy: sourcePolicy(nil)})
}

// noteRate tells the run's pool of range streams when a file fetched on one connection of an
// HTTP source (body, opened at start) came slower than rangeFastEnough while its reader spent
// most of that time waiting for the connection (the open included): the link limits each
// connection, and free slots may carry more files at once (ranged.Pool.Borrow). A file that
// came slowly because its reader was busy (hashing, writing, a loaded CPU) says nothing about
// the link. One file of at least a chunk is enough. Files smaller than a chunk say it
// together (slowSmall): one waits long (slowWait) now and then on a loaded machine, while over
// a far link each costs at least a round trip, which more files at once hide (issue 25:
// before, only a file of a chunk or more could show the link slow, so a stream that lists its
// small files first ran them Concurrency at a time until its first large file ended).
func (h *hub) noteRate(f Fetch, start time.Time, body *timedBody) {
	pool := h.ranged()
	if pool == nil {
		return
	}
	d := time.Since(start)
	slow := float64(f.Size) < rangeFastEnough*d.Seconds() && 2*body.waited >= d
	if f.Size >= h.opts.RangeChunk {
		if slow {
			pool.MarkSlow()
		}
		return
	}
	seen := h.smallSeen.Add(1)
	if slow && body.waited >= slowWait {
		if n := h.smallSlow.Add(1); n >= slowSmall && 2*n >= seen {
			pool.MarkSlow()
		}
	}
}

// slowWait: a file smaller than a range chunk whose reader waited this long for its connection
// (the request's round trip and the body) came slowly. Far above what loopback costs, and below
// a round trip to another site.
const slowWait = 20 * time.Millisecond

// slowSmall: the link is found slow by small files once this many, and at least half of those
// seen, came slowly (a loaded machine stalls one now and then on loopback too: seen there, the
// range streams it opened cost a directory mirror 14% more CPU).
const slowSmall = 4

// openFetch opens f for a fetch: in ranges from src when the range pool takes it (whose reader
// tries each range's open again itself), or in one piece from rsrc (src behind sourcePolicy).
// The caller calls noted once the body is closed: a whole body's time tells noteRate how the
// link did.
func (h *hub) openFetch(ctx context.Context, src, rsrc store.Source, f Fetch) (rc io.ReadCloser, noted func(), err error) {
	if rc := h.openRanged(ctx, src, f); rc != nil {
		return rc, func() {}, nil
	}
	start := time.Now()
	open := func() (io.ReadCloser, error) { return rsrc.Open(ctx, f.Path, 0) }
	if pool := h.ranged(); pool != nil && isRangeSource(src) {
		// What the link brings is measured on every connection to it (the growth rule).
		rc, err = pool.Meter(open)
	} else {
		rc, err = open()
	}
	if err != nil {
		return nil, nil, err
	}
	tb := &timedBody{ReadCloser: rc, waited: time.Since(start)} // a small body comes with its headers
	return tb, func() { h.noteRate(f, start, tb) }, nil
}

// logJudgement logs what the range pool's growth rule decided (ranged.Judgement).
func logJudgement(log *slog.Logger, j ranged.Judgement) {
	log.Info("range streams: the growth rule judged the link", "cut", j.Cut, "undone", j.Undone, "limit", j.Limit, "step_back", j.StepBack, "reason", j.Reason,
		"base_rate", int64(j.BaseRate), "base_conns", round2(j.BaseConns), "jump_rate", int64(j.JumpRate), "jump_conns", round2(j.JumpConns),
		"cut_rate", int64(j.CutRate), "cut_conns", round2(j.CutConns), "jump_pace", int64(j.JumpPace), "cut_pace", int64(j.CutPace))
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// timedBody counts how long its reader waits for the open and in Read (see noteRate).
type timedBody struct {
	io.ReadCloser
	waited time.Duration
}

func (t *timedBody) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := t.ReadCloser.Read(p)
	t.waited += time.Since(start)
	return n, err
}

// isRangeSource says whether src serves ranges (an HTTP source): the source the run's pool of
// range streams reads from, whose link its growth rule measures.
func isRangeSource(src store.Source) bool {
	_, ok := store.As[store.RangeOpener](src)
	return ok
}
