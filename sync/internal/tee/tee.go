// Package tee streams one verified download into the Puts of several targets at once (a fan-out
// run's files), from chunks the targets share, within one memory budget for the whole run.
//
// It is the tee side of the fan-out protocol of package store (store/fanout.go): every reader
// it hands a Put is a store.ChunkReader (a target that keeps chunks, S3, sends its parts from
// them instead of copying them) and a store.VerifiedReader (the stream is checked once, here,
// so a Put need not hash it again); a target says how much of the chunks one Put must hold
// (store.ChunkHolder), which is what Reservation keeps room for.
package tee

import (
	"context"
	"errors"
	"io"
	gosync "sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/ssmirror/ssmirror/store"
)

// Chunk is the size of one read from the source into the chunks the readers share.
const Chunk = 256 << 10

// ErrFellBehind is the failure of a reader (a target) that held the others back while it wrote
// slower than the minimum rate (or not at all) for longer than the patience (the slow-target
// rule, see tee): it is given up on, and the others go on.
var ErrFellBehind = errors.New("the target held the others back, writing slower than the minimum rate (--min-rate) or not at all, for too long: given up on for this run")

// The fan-out's memory: one budget of chunks for the run (Budget: sync's Options.FanOutBuffer),
// whatever the number of targets and of files in flight.
//
// A file's tee reserves its share of the budget (Reservation) before it opens the source,
// and holds at most that many bytes of chunks alive at once: a chunk counts from the moment it
// is read until the last of its holders lets go of it (queued for a reader, copied out by a
// reader that reads (Read), or taken by one that keeps chunks (store.ChunkReader: an S3 Put
// builds its parts from them, and releases them once each part has been answered)). A file
// waits for its reservation holding nothing. Once admitted, it always goes on: every reader
// either reads into memory of its own (a directory) or keeps chunks for parts it sends
// whatever the other files do (S3 takes no buffer of its own budget for them), and the
// reservation is at least what every reader of the file must hold before it can send anything
// (store.ChunkHolder) plus two chunks, so the pump always has room once the parts in flight
// have been answered. Nothing waits on another file, so no cycle of waits can form across files.

// Budget is the run's budget of tee chunks, handed out to files first come, first served.
type Budget struct {
	size int64
	sem  *semaphore.Weighted
}

func NewBudget(size int64) *Budget {
	return &Budget{size: size, sem: semaphore.NewWeighted(size)}
}

// Reserve waits until n bytes of the budget (at most all of it) are the caller's, and returns
// how many it got.
func (b *Budget) Reserve(ctx context.Context, n int64) (int64, error) {
	n = min(n, b.size)
	if err := b.sem.Acquire(ctx, n); err != nil {
		return 0, context.Cause(ctx)
	}
	return n, nil
}

// Release gives back n bytes Reserve handed out.
func (b *Budget) Release(n int64) { b.sem.Release(n) }

// borrow takes n more bytes of the budget if it has them free now and no file waits for its
// reservation: a tee grows beyond its reservation only into room nobody else waits for, and
// never waits for it.
func (b *Budget) borrow(n int64) bool { return b.sem.TryAcquire(n) }

// DefaultMinRate is the slowest rate a reader holding the others back is waited for at when
// Config.MinRate is not set.
const DefaultMinRate = 64 << 10

// tee hands one stream to several readers (one per target), each with its own queue. The
// queues share the chunks read: memory is what the readers hold together, not that times the
// readers, and never more than limit bytes of chunks (the file's reservation) beyond what it
// borrows.
//
// The slow-target rule. A reader holds the stream back when the pump waits for room and it has
// the most bytes queued, more than half the reservation beyond the reader with the least (a
// lagging copy), or, when none lags, it holds chunks (queued, or taken for S3 parts) while
// another reader waits for data, waiting itself or not; and, once the stream ended, while it is
// still writing and another is done (tee.linger). It is charged the time it holds the others
// back less the time its writing meanwhile accounts for at minRate (what it wrote over
// minRate), never below zero, and is given up on (ErrFellBehind) once its charge is beyond the
// patience plus the chunks it has taken at minRate (an S3 part is answered only once all of it
// is sent). So a reader that keeps up
// minRate, the slowest a file may come at, is waited for however much faster another is: a
// site on a slow but steady link converges, and the fan-out goes at its pace. A stalled upload
// (nothing written) is given up on after the patience plus its parts' bytes at minRate; a
// trickle below minRate a little later, in proportion to how far below it is.
type tee struct {
	mu       gosync.Mutex
	cond     *gosync.Cond
	limit    int64   // the most bytes of chunk buffers alive at once: the reservation
	budget   *Budget // the run's, to borrow from beyond limit (nil: none)
	borrowed int64   // bytes borrowed from budget now
	alive    int64   // bytes of chunk buffers alive now
	patience time.Duration
	minRate  int64  // bytes per second (the slow-target rule)
	sha256   string // what the pump's Verifier checks ("": nothing said to the readers)
	outs     []*teeOut
	ended    bool
	end      error // io.EOF, or the stream's failure
}

// chunk is one read from the source, queued for every reader that still reads; its buffer
// goes back to chunkPool when the last of its holders lets go of it.
type chunk struct {
	buf  *[]byte // the whole buffer (Chunk bytes), from chunkPool
	data []byte  // what was read into it
	refs int
}

// chunkPool keeps chunk buffers from file to file: a fan-out run reads every file through them,
// and would otherwise leave the garbage collector a buffer per read.
var chunkPool = gosync.Pool{New: func() any { b := make([]byte, Chunk); return &b }}

// release drops one holder's hold on c (under the tee's lock).
func (t *tee) release(c *chunk) {
	if c.refs--; c.refs == 0 {
		t.alive -= int64(cap(*c.buf))
		chunkPool.Put(c.buf)
		c.buf, c.data = nil, nil
		// What was borrowed goes back as soon as the reservation holds what is alive.
		if back := min(t.borrowed, t.limit+t.borrowed-t.alive); back > 0 {
			t.borrowed -= back
			t.budget.Release(back)
		}
		t.cond.Broadcast()
	}
}

// teeOut is one reader of a tee: the Put of one target.
type teeOut struct {
	t          *tee
	queue      []*chunk
	off        int      // bytes of queue[0] already read (Read)
	taken      []*chunk // chunks handed by ReadChunk and not released yet
	closed     bool     // its Put returned: nothing more is kept for it
	fellBehind bool     // given up on
	// held is its charge for holding the others back, less what its writing meanwhile
	// accounts for (the slow-target rule).
	held    time.Duration
	gotEnd  bool // it was handed the stream's failure
	waiting bool // it waits for data (next)
	// done is how many bytes it wrote: read, or took and released (an S3 part answered).
	done int64
	// cancel ends the context its Put was given (ErrFellBehind), once it is given up on: a
	// Put still sending what it took stops there, and nobody waits for it.
	cancel context.CancelCauseFunc
	// returned: its Put returned; abandoned: Stream returned without waiting for it (it was
	// given up on), so what it returns is nobody's.
	returned, abandoned bool
}

// giveUp gives up on o for the run (under the tee's lock): what is queued for it is let go of,
// it reads ErrFellBehind from now on, and its Put's context ends.
func (o *teeOut) giveUp() {
	o.drop()
	o.fellBehind = true
	if o.cancel != nil {
		o.cancel(ErrFellBehind)
	}
	o.t.cond.Broadcast()
}

// allowance is how much charge o may carry before it is given up on: the patience, plus the
// chunks it took at the tee's minRate (under the tee's lock).
func (o *teeOut) allowance() time.Duration {
	var taken int64
	for _, c := range o.taken {
		taken += int64(len(c.data))
	}
	return o.t.patience + o.t.atMinRate(taken)
}

// atMinRate is how long n bytes take at the tee's minRate.
func (t *tee) atMinRate(n int64) time.Duration {
	return time.Duration(float64(n) / float64(t.minRate) * float64(time.Second))
}

var (
	_ store.ChunkReader    = (*teeOut)(nil)
	_ store.VerifiedReader = (*teeOut)(nil)
)

// VerifiedSHA256 is the sha256 the pump checks the stream against before it hands any reader
// io.EOF (store.VerifiedReader): a stream that does not have it ends with ErrChecksum instead.
func (o *teeOut) VerifiedSHA256() string { return o.t.sha256 }

// errNoReader ends a pump whose readers all stopped (each failed on its own).
var errNoReader = errors.New("no target reads the file any more")

// newTee returns a tee of n readers holding at most limit bytes of chunks (at least one chunk).
//
// With budget, the tee also borrows room the run's budget has free (Budget.borrow) while its
// reservation is full, and gives it back as its chunks are let go of: memory stays within the
// run's budget, and no file ever waits for what another borrowed.
func newTee(n int, limit int64, budget *Budget) *tee {
	t := &tee{limit: max(limit, Chunk), budget: budget, minRate: DefaultMinRate}
	t.cond = gosync.NewCond(&t.mu)
	for range n {
		t.outs = append(t.outs, &teeOut{t: t})
	}
	return t
}

func (o *teeOut) live() bool { return !o.closed && !o.fellBehind }

// queued is how many bytes are queued for o and not yet read or taken.
func (o *teeOut) queued() int64 {
	n := int64(-o.off)
	for _, c := range o.queue {
		n += int64(len(c.data))
	}
	return n
}

// next waits for o's next chunk; nil means the stream's end or o's failure (in err).
func (o *teeOut) next() (*chunk, error) {
	t := o.t
	for len(o.queue) == 0 && !o.fellBehind && !t.ended {
		if !o.waiting {
			// A reader starting to wait for data may make another that holds chunks the one
			// holding the stream back (deliver's stall rule): the pump must look again.
			o.waiting = true
			t.cond.Broadcast()
		}
		t.cond.Wait()
	}
	o.waiting = false
	if o.fellBehind {
		return nil, ErrFellBehind
	}
	if len(o.queue) == 0 {
		if t.end != io.EOF {
			o.gotEnd = true
		}
		return nil, t.end
	}
	return o.queue[0], nil
}

// pop takes queue[0] off o's queue (under the tee's lock), and wakes the pump: who holds the
// stream back may have changed.
func (o *teeOut) pop() {
	o.queue[0] = nil
	o.queue, o.off = o.queue[1:], 0
	o.t.cond.Broadcast()
}

func (o *teeOut) Read(p []byte) (int, error) {
	t := o.t
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := o.next()
	if c == nil {
		return 0, err
	}
	n := copy(p, c.data[o.off:])
	o.done += int64(n)
	if o.off += n; o.off == len(c.data) {
		o.pop()
		t.release(c)
	}
	return n, nil
}

// ReadChunk hands o's next chunk itself (store.ChunkReader): it stays alive, and counts
// against the file's reservation, until release.
func (o *teeOut) ReadChunk() ([]byte, func(), error) {
	t := o.t
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := o.next()
	if c == nil {
		return nil, nil, err
	}
	data := c.data[o.off:]
	o.pop()
	o.taken = append(o.taken, c)
	return data, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for i, h := range o.taken {
			if h == c {
				o.taken = append(o.taken[:i], o.taken[i+1:]...)
				o.done += int64(len(data))
				t.release(c)
				t.cond.Broadcast()
				return
			}
		}
		// Already let go of by close.
	}, nil
}

// close says the reader's Put returned: what is queued for it, and any chunk it did not
// release, is let go of.
func (o *teeOut) close() {
	t := o.t
	t.mu.Lock()
	o.drop()
	for _, c := range o.taken {
		t.release(c)
	}
	o.taken = nil
	o.closed = true
	t.cond.Broadcast()
	t.mu.Unlock()
}

// drop lets go of what is queued for o (under the tee's lock).
func (o *teeOut) drop() {
	for _, c := range o.queue {
		o.t.release(c)
	}
	o.queue, o.off = nil, 0
}

// deliver queues c for every live reader once the file's reservation (or what it can borrow)
// has room for it. While it has none, the readers holding the stream back are charged for the
// wait by the slow-target rule (see tee), and given up on once their charge is beyond their
// allowance. It returns false when no reader is left.
func (t *tee) deliver(c *chunk) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	size := int64(cap(*c.buf))
	for {
		live := t.liveOuts()
		if len(live) == 0 {
			chunkPool.Put(c.buf)
			return false
		}
		if t.makeRoom(size) {
			break
		}
		w := holdBack{wait: -1}
		if !w.lagging(live, t.limit) {
			w.holding(live)
		}
		if w.gaveUp {
			continue // look again without them
		}
		t.waitCharging(w.wait, w.late)
	}
	t.alive += size
	for _, o := range t.outs {
		if o.live() {
			o.queue = append(o.queue, c)
			c.refs++
		}
	}
	t.cond.Broadcast()
	return true
}

// liveOuts is the readers still reading (under the tee's lock).
func (t *tee) liveOuts() []*teeOut {
	var live []*teeOut
	for _, o := range t.outs {
		if o.live() {
			live = append(live, o)
		}
	}
	return live
}

// makeRoom reports whether a chunk of size bytes may be queued now (under the tee's lock):
// the reservation (with what is borrowed) has room for it, or the live readers hold less than
// the reservation, or the run's budget lends it.
func (t *tee) makeRoom(size int64) bool {
	if t.alive+size <= t.limit+t.borrowed || t.heldByLive()+size <= t.limit {
		return true
	}
	if t.budget != nil && t.budget.borrow(size) {
		t.borrowed += size
		return true
	}
	return false
}

// holdBack is what one look at the readers holding the stream back found (deliver): the
// readers to charge for the wait, how long at most to wait before looking again (negative:
// until something changes), and whether a reader was given up on.
type holdBack struct {
	late   []*teeOut
	wait   time.Duration
	gaveUp bool
}

// charge counts o among the readers holding the stream back: it gives up on o if its charge is
// beyond its allowance, or else makes the wait no longer than what is left of it.
func (w *holdBack) charge(o *teeOut) {
	if left := o.allowance() - o.held; left > 0 {
		w.late = append(w.late, o)
		if w.wait < 0 || left < w.wait {
			w.wait = left
		}
		return
	}
	o.giveUp()
	w.gaveUp = true
}

// lagging looks for the readers with the most bytes queued (handed to them and not yet taken),
// if that is more than half the reservation (limit) beyond the reader with the least, charges
// them, and reports whether there were any. Chunks a reader took (an S3 part being assembled or
// sent) are its work in progress, as part buffers of its own would be, not a lag.
func (w *holdBack) lagging(live []*teeOut, limit int64) bool {
	most, least := int64(0), int64(-1)
	for _, o := range live {
		q := o.queued()
		most = max(most, q)
		if least < 0 || q < least {
			least = q
		}
	}
	if most-least <= limit/2 {
		return false
	}
	for _, o := range live {
		if o.queued() == most {
			w.charge(o)
		}
	}
	return true
}

// holding applies the rule for when nobody lags by its queue: a reader that holds chunks
// (queued, or taken for S3 parts) while another waits for data holds the stream back, and is
// charged for the wait. Also when it waits for data itself: an S3 reader assembling its next
// part while the parts it sent are not answered (a server stopped) holds the room in those
// parts; it was charged only while not waiting, so with every reader waiting nobody was, and
// the file (and the run) waited for ever.
func (w *holdBack) holding(live []*teeOut) {
	waiting := 0
	for _, o := range live {
		if o.waiting {
			waiting++
		}
	}
	for _, o := range live {
		othersWait := waiting > 1 || waiting == 1 && !o.waiting
		if othersWait && (len(o.taken) > 0 || len(o.queue) > 0) {
			w.charge(o)
		}
	}
}

// heldByLive is how many bytes of chunks the live readers hold. The chunks only readers given
// up on still hold (parts their Puts are sending until they return) are alive but no longer
// count against the file's reservation: the readers that go on do not wait for them.
func (t *tee) heldByLive() int64 {
	seen := map[*chunk]bool{}
	var n int64
	for _, o := range t.outs {
		if !o.live() {
			continue
		}
		for _, cs := range [][]*chunk{o.queue, o.taken} {
			for _, c := range cs {
				if !seen[c] {
					seen[c] = true
					n += int64(cap(*c.buf))
				}
			}
		}
	}
	return n
}

// linger waits, once the stream ended, for the readers still writing it, and applies the
// slow-target rule to them: a reader still writing while another is done (and waits for the
// file's outcome) is charged for the wait, and given up on once its charge is beyond its
// allowance (its Put's context ends). A whole file fits in the run's budget often enough that
// a slow target never holds the stream back, only the file's end.
func (t *tee) linger() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		var live []*teeOut
		done := false
		for _, o := range t.outs {
			switch {
			case o.live():
				live = append(live, o)
			case o.closed && !o.fellBehind:
				done = true
			}
		}
		if len(live) == 0 {
			return
		}
		w := holdBack{wait: -1}
		if done {
			for _, o := range live {
				w.charge(o)
			}
		}
		if w.gaveUp {
			continue
		}
		t.waitCharging(w.wait, w.late)
	}
}

// settled reports whether every Put returned or was given up on (under the tee's lock).
func (t *tee) settled() bool {
	for _, o := range t.outs {
		if !o.returned && !o.fellBehind {
			return false
		}
	}
	return true
}

// giveBack returns what the tee still borrows from the run's budget (once its readers closed,
// nothing is alive and release gave it all back already; this is for certainty).
func (t *tee) giveBack() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.borrowed > 0 && t.alive == 0 {
		t.budget.Release(t.borrowed)
		t.borrowed = 0
	}
}

// finish ends the stream for every reader: io.EOF, or its failure.
func (t *tee) finish(err error) {
	t.mu.Lock()
	t.ended, t.end = true, err
	t.cond.Broadcast()
	t.mu.Unlock()
}

// pump reads v, the verified stream, into the readers until its end, and returns its failure:
// a read error or a wrong size or checksum (nil when it was read whole and verified, or when no
// reader was left: each reader's Put has its own error then).
func (t *tee) pump(v *store.Verifier) error {
	for {
		buf := chunkPool.Get().(*[]byte)
		n, err := io.ReadFull(v, *buf)
		if n == 0 {
			chunkPool.Put(buf)
		} else if !t.deliver(&chunk{buf: buf, data: (*buf)[:n]}) {
			t.finish(errNoReader)
			return nil
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			if err := v.Check(); err != nil {
				t.finish(err)
				return err
			}
			t.finish(io.EOF)
			return nil
		case err != nil:
			t.finish(err)
			return err
		}
	}
}

// Reservation is the share of the run's budget a file of size bytes reserves before its tee
// opens the source: share (the budget over the files in flight), but never less than hold (the
// most any reader of it must hold before it can send anything, store.ChunkHolder) plus two
// chunks, and never more than the file's own chunks.
func Reservation(size, share, hold int64) int64 {
	r := max(share, hold+2*Chunk)
	chunks := (max(size, 1) + Chunk - 1) / Chunk * Chunk
	return min(r, chunks)
}

// Put is one target's Put of the file, given the reader it is to read and a context that ends
// (with ErrFellBehind as its cause) if it is given up on: the Put stops there.
type Put func(ctx context.Context, r io.Reader) (store.Info, error)

// Result is one Put's outcome: what it returned, with ErrFellBehind when it was given up on, or
// the stream's failure (FromSource) when that is what ended it.
type Result struct {
	Info store.Info
	Err  error
	// FromSource says that Err is the stream's failure (a read error, or a size or sha256 that
	// is not what it must be), not the target's own.
	FromSource bool
}

// Config is what one file's tee works within.
type Config struct {
	// Limit is the most bytes of chunks the file holds alive at once: its reservation
	// (Budget.Reserve, of Reservation bytes).
	Limit int64
	// Budget is the run's, to borrow from beyond Limit while nobody waits for it (nil: none).
	Budget *Budget
	// Patience is how long, in all, a reader may hold the others back beyond what its writing
	// at MinRate accounts for before it is given up on (the slow-target rule, see tee).
	Patience time.Duration
	// MinRate is the slowest rate, in bytes per second, a reader holding the others back is
	// waited for at (0: DefaultMinRate).
	MinRate int64
	// SHA256 is what the stream is checked against ("": no sha256): the readers say so to
	// their Puts (store.VerifiedReader), which need not hash the bytes again.
	SHA256 string
}

// Stream writes v, the verified stream of one file, into every Put of puts at the same time,
// each reading a reader of its own, and returns each Put's outcome and the stream's failure
// (nil when it was read whole and verified, or when no Put read it any more: each has its own
// error then). src, what v reads, is closed as soon as the stream ended, before Stream waits
// for the Puts still sending what they were handed. It does not wait for a Put given up on
// (ErrFellBehind): its context ended, and it stops on its own (an S3 Put lets the parts it sent
// finish before it aborts its upload, up to half a minute), holding nobody's outcome back.
func Stream(v *store.Verifier, src io.Closer, cfg Config, puts []Put) (results []Result, srcErr error) {
	t := newTee(len(puts), cfg.Limit, cfg.Budget)
	t.patience, t.sha256 = cfg.Patience, cfg.SHA256
	if cfg.MinRate > 0 {
		t.minRate = cfg.MinRate
	}
	results = make([]Result, len(puts))
	for i, put := range puts {
		ctx, cancel := context.WithCancelCause(context.Background())
		t.outs[i].cancel = cancel
		go func() { // waited for until it returns or is given up on (settled)
			defer cancel(nil)
			info, err := put(ctx, t.outs[i])
			o := t.outs[i]
			o.close()
			t.mu.Lock()
			defer t.mu.Unlock()
			o.returned = true
			if !o.abandoned {
				results[i] = Result{Info: info, Err: err}
			}
			t.cond.Broadcast()
		}()
	}
	srcErr = t.pump(v)
	src.Close()
	t.linger()
	t.mu.Lock()
	for !t.settled() {
		t.cond.Wait()
	}
	for i, o := range t.outs {
		if !o.returned {
			o.abandoned = true
			results[i] = Result{Err: ErrFellBehind}
		}
	}
	t.mu.Unlock()
	t.giveBack()
	for i, o := range t.outs {
		switch {
		case results[i].Err == nil:
		case o.fellBehind:
			results[i].Err = ErrFellBehind
		case o.gotEnd && srcErr != nil:
			results[i] = Result{Err: srcErr, FromSource: true}
		}
	}
	return results, srcErr
}

// waitCharging waits (t.mu held, as cond.Wait wants) for a change, or at most wait when it is
// not negative, and charges each late reader the time waited for it less what it wrote
// meanwhile at the tee's minRate, never below zero.
func (t *tee) waitCharging(wait time.Duration, late []*teeOut) {
	if wait < 0 {
		t.cond.Wait()
		return
	}
	start := time.Now()
	done := make([]int64, len(late))
	for i, o := range late {
		done[i] = o.done
	}
	timer := time.AfterFunc(wait, func() {
		t.mu.Lock()
		t.cond.Broadcast()
		t.mu.Unlock()
	})
	t.cond.Wait()
	timer.Stop()
	waited := time.Since(start)
	for i, o := range late {
		o.held = max(o.held+waited-t.atMinRate(o.done-done[i]), 0)
	}
}
