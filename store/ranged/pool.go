// Package ranged reads objects from a store.RangeOpener (an HTTP source) as one stream each, in
// order, on the object's own connection and, while that connection is slow, also as byte ranges
// fetched in parallel: a Pool shares a bounded number of range streams (each one connection and
// one chunk buffer) among all the files being read at once.
package ranged

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	gosync "sync"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/retry"
)

// errRangedClosed stops the workers of a reader that was closed.
var errRangedClosed = errors.New("ranged reader closed")

// Options are the optional parts of one object's reader (Pool.Open).
type Options struct {
	// Policy is how a range that cannot be opened is tried again (zero: once).
	Policy retry.Policy
}

// Pool shares a fixed number of range streams among all the files being read at once. A stream
// (a slot) is one connection and one chunk buffer. Each file starts on a single connection of its
// own, read straight through with no buffer in bounded windows (see Reader): the source is
// asked for each byte once and serves none that is not read. While slots are free, a file that
// wants more is given one: a worker that fetches chunks ahead of the reader into its buffer. A
// file wants more when its connection was slower than PoolOptions.FastEnough for two probe
// periods in a row while the caller waited for it (the connection, not the caller, set the
// pace), it is on fewer than MaxStreams streams and has at least two chunks nobody fetches yet.
// A slot whose worker finds nothing more to fetch, or whose file is closed, goes to the file on
// the fewest streams (then the one with the most bytes left); and a worker between two chunks
// gives its slot back when another file that wants streams is on two fewer, so no large file
// waits on one connection while others hold many.
// The pool never holds more than Slots buffers, and a run never more than one connection per file
// in flight plus Slots. On a link found slow, the growth rule (growth.go) may cut how many slots
// are in use at once, when more connections did not bring more.
type Pool struct {
	chunk      int64
	maxStreams int
	fastEnough float64
	others     int
	windowTime time.Duration
	settleTime time.Duration
	judged     func(Judgement)
	metering   bool
	meter      meter

	mu    gosync.Mutex
	free  [][]byte        // buffers of the free slots (nil until first used)
	slots int             // len(free) + the slots held by workers
	files map[*Reader]int // the open readers, in order of opening (the value)
	seq   int
	// linkSlow: some file's connection was found slower than fastEnough (or there is no gate):
	// slots nobody's streams want may be lent out (Borrow).
	linkSlow bool
	changed  chan struct{} // closed (and replaced) when a slot is freed, linkSlow is set or limit changes
	// limit is how many slots may be in use at once: all of them unless the growth rule cut it.
	limit int
	grow  growth
}

// PoolOptions are the optional parts of a Pool.
type PoolOptions struct {
	// MaxStreams is the most range streams one file is given (0: no bound but the slots).
	MaxStreams int
	// FastEnough, in bytes per second: a file whose own connection brings each chunk at least
	// this fast (within chunk/FastEnough of its start) is given no range streams, nor is one
	// whose caller spends most of that time outside Read (the caller sets the pace); one whose
	// chunk is late while the caller waits in Read, for two such periods in a row, wants them
	// from then on (0: every file wants them from its start). With a gate, the growth rule runs
	// (growth.go).
	FastEnough float64
	// Others is how many connections to the source the caller keeps beside the pool's slots
	// (one per file it fetches at once): the growth rule counts them in what carries the link.
	Others int
	// Window and Settle time the growth rule's measurements (0: DefaultWindow, DefaultSettle;
	// longer on a far link).
	Window, Settle time.Duration
	// Judged, if set, is told what the growth rule decided, once (under the pool's lock: it must
	// not call the pool).
	Judged func(Judgement)
}

// NewPool returns a pool of slots range streams, each fetching chunks of chunk bytes.
func NewPool(slots int, chunk int64, opts PoolOptions) *Pool {
	p := &Pool{
		chunk:      chunk,
		maxStreams: opts.MaxStreams,
		fastEnough: opts.FastEnough,
		free:       make([][]byte, slots),
		slots:      slots,
		files:      map[*Reader]int{},
		linkSlow:   opts.FastEnough <= 0,
		changed:    make(chan struct{}),
		limit:      slots,
		others:     opts.Others,
		windowTime: cmp.Or(opts.Window, DefaultWindow),
		settleTime: cmp.Or(opts.Settle, DefaultSettle),
		judged:     opts.Judged,
		metering:   opts.FastEnough > 0,
	}
	if p.maxStreams <= 0 {
		p.maxStreams = slots
	}
	return p
}

// Slots is how many range streams (and chunk buffers) the pool holds at most.
func (p *Pool) Slots() int { return p.slots }

// Chunk is the size of one range.
func (p *Pool) Chunk() int64 { return p.chunk }

// Free is how many slots are free now (for tests and progress).
func (p *Pool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// Limit is how many slots may be in use at once now: Slots, unless the growth rule cut it.
func (p *Pool) Limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

// usable says whether one more slot may be taken now: one is free and the limit allows it
// (under p.mu).
func (p *Pool) usable() bool {
	return len(p.free) > 0 && p.slots-len(p.free) < p.limit
}

// Open returns a reader of key (size bytes) from src: the object's bytes in order, fetched on
// one connection and on as many of the pool's streams as it is given. A range that cannot be
// opened is tried again under opts.Policy; one that fails for good fails the read with an error
// naming the key and the byte range. The reader must be closed: Close stops its fetches, waits
// for them and gives its slots back to the pool.
func (p *Pool) Open(ctx context.Context, src store.RangeOpener, key string, size int64, opts Options) io.ReadCloser {
	r := &Reader{
		pool:    p,
		parent:  ctx,
		src:     src,
		key:     key,
		size:    size,
		chunk:   p.chunk,
		nchunks: (size + p.chunk - 1) / p.chunk,
		policy:  opts.Policy,
		owned:   map[int64]*poolChunk{},
		closing: make(chan struct{}),
		slow:    p.fastEnough <= 0,
	}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	p.mu.Lock()
	p.seq++
	p.files[r] = p.seq
	p.mu.Unlock()
	p.schedule()
	return r
}

// schedule gives free slots to the files that want them, fairest first.
func (p *Pool) schedule() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.usable() {
		var best *Reader
		var bestStreams int
		var bestLeft int64
		for r, seq := range p.files {
			streams, left, ok := r.wants(p.maxStreams)
			if !ok {
				continue
			}
			if best == nil || streams < bestStreams || streams == bestStreams && (left > bestLeft || left == bestLeft && seq < p.files[best]) {
				best, bestStreams, bestLeft = r, streams, left
			}
		}
		if best == nil {
			return
		}
		buf := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		if !best.grant(buf) {
			p.free = append(p.free, buf)
			return
		}
	}
}

// release takes a slot's buffer back and hands the slot on.
func (p *Pool) release(buf []byte) {
	p.mu.Lock()
	p.free = append(p.free, buf)
	p.signal()
	p.mu.Unlock()
	p.schedule()
}

// signal wakes Borrow's waiters (under p.mu).
func (p *Pool) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// MarkSlow says that a connection to the source was found slower than FastEnough (a whole
// file fetched without the pool, say): from then on, slots no file's streams want are lent.
func (p *Pool) MarkSlow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.linkSlow {
		p.linkSlow = true
		p.signal()
		p.startGrowth(time.Now())
	}
}

// Borrow waits for a slot that no file's streams want, on a link found slow, and takes it for
// something else that needs a connection (one more small file at once: on a link that limits
// each connection, more files at once bring more). It returns the function that gives the slot
// back, or false when ctx ends first. Files that want streams come first: a lent slot goes back
// to them once given back.
func (p *Pool) Borrow(ctx context.Context) (giveBack func(), ok bool) {
	for {
		p.mu.Lock()
		if p.linkSlow && p.usable() && !p.anyWants() {
			buf := p.free[len(p.free)-1]
			p.free = p.free[:len(p.free)-1]
			p.mu.Unlock()
			var once gosync.Once
			return func() { once.Do(func() { p.release(buf) }) }, true
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// anyWants says whether some file wants one more stream (under p.mu).
func (p *Pool) anyWants() bool {
	for r := range p.files {
		if _, _, ok := r.wants(p.maxStreams); ok {
			return true
		}
	}
	return false
}

// shouldYield says whether a worker of r, between two chunks, should give its slot back for a
// file that wants one and is on at least two streams fewer than r (so that a file that wanted
// streams only once the others had them all does not stay on its single connection).
func (p *Pool) shouldYield(r *Reader) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots-len(p.free) > p.limit {
		return true // the growth rule cut the slots in use
	}
	if len(p.free) > 0 {
		return false
	}
	r.mu.Lock()
	mine := r.workers
	r.mu.Unlock()
	for o := range p.files {
		if o == r {
			continue
		}
		if streams, _, ok := o.wants(p.maxStreams); ok && streams+1 < mine {
			return true
		}
	}
	return false
}

func (p *Pool) forget(r *Reader) {
	p.mu.Lock()
	delete(p.files, r)
	p.mu.Unlock()
}

// Reader is one object read through a Pool (see Pool.Open).
//
// The object is cut into chunks [i×chunk, min(size, (i+1)×chunk)). Each chunk is either read by
// the caller straight from the file's own connection (the base) or fetched by a worker into its
// slot's buffer and handed on once the reader gets there. Chunks are handed out in order: those
// below next are taken. The base never asks for more than it will read: each of its requests is
// a bounded window of chunks, which it reads to its end. While the file is fast and has no
// worker, the window doubles from one chunk up to maxBaseWindow, so a fast file costs few
// requests; once the file is slow, the window is slowBaseWindow chunks (one while it has
// workers), so workers it is given start soon, on the chunks past the window. Nothing is ever
// cut: a request cut short would have the source serve what it had sent past the cut, for
// nobody (several MiB in socket buffers on a real connection). A worker holds its buffer until
// the reader has read the chunk in it (or the reader is closed), so a buffer is never given to
// another file while it is being read.
type Reader struct {
	pool    *Pool
	parent  context.Context
	ctx     context.Context // cancelled by Close or by the first failure (its cause)
	cancel  context.CancelCauseFunc
	src     store.RangeOpener
	key     string
	size    int64
	chunk   int64
	nchunks int64
	policy  retry.Policy
	wg      gosync.WaitGroup
	closing chan struct{} // closed by Close: workers give their buffers back

	mu      gosync.Mutex
	pos     int64                // bytes handed to the caller
	next    int64                // first chunk nobody fetches yet
	owned   map[int64]*poolChunk // chunks taken by workers, not yet read
	workers int
	closed  bool
	slow    bool // the base is slower than the pool's FastEnough: it wants streams
	// The base: chunks [baseFrom, baseEnd) come from body; window is how many chunks the next
	// base request asks for while the file is fast and has no worker.
	body     io.ReadCloser
	baseFrom int64
	baseEnd  int64
	window   int64
	probe    *time.Timer // marks the file slow when the base's chunk is not in by then
	probeSeq int64       // which base chunk the probe times
	// What the probe weighs: when its period started, how long the caller has waited in the
	// base's Read since then (reads done), and since when it waits now (zero: not in a Read).
	probeStart time.Time
	waited     time.Duration
	waitSince  time.Time
	strikes    int  // probe periods in a row that found the base slow (see startProbe)
	late       bool // the base's chunk was not in within its first period

	err error // sticky failure (the caller's goroutine only)
}

type poolChunk struct {
	idx      int64
	off      int64
	n        int
	buf      []byte
	err      error
	done     chan struct{} // closed when buf holds the chunk or err is set
	consumed chan struct{} // closed when the caller has read it
}

// wants says, under the reader's lock, whether r wants one more stream, with its streams and
// bytes left for the pool's choice.
func (r *Reader) wants(max int) (streams int, left int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || !r.slow || r.workers >= max || r.ctx.Err() != nil {
		return 0, 0, false
	}
	return r.workers, r.size - r.pos, r.claimable() >= 2
}

// claimable is how many chunks a new worker could take: those nobody fetches yet (past the
// base's window).
func (r *Reader) claimable() int64 {
	return r.nchunks - r.next
}

// grant starts a worker holding buf, unless r was closed meanwhile.
func (r *Reader) grant(buf []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.workers++
	r.wg.Add(1)
	go r.work(buf)
	return true
}

// claim takes the next chunk for a worker, or nil when there is none left.
func (r *Reader) claim(buf []byte) *poolChunk {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.ctx.Err() != nil {
		return nil
	}
	if r.next >= r.nchunks {
		return nil
	}
	i := r.next
	r.next++
	off := i * r.chunk
	c := &poolChunk{idx: i, off: off, n: int(min(r.chunk, r.size-off)), buf: buf, done: make(chan struct{}), consumed: make(chan struct{})}
	r.owned[i] = c
	return c
}

// work fetches chunks into buf, one at a time, each once the caller has read the one before;
// it gives the slot back when there is nothing left to fetch, the reader failed or is closed.
func (r *Reader) work(buf []byte) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		r.workers--
		r.mu.Unlock()
		r.pool.release(buf)
	}()
	for first := true; ; first = false {
		if !first && r.pool.shouldYield(r) {
			return
		}
		c := r.claim(buf)
		if c == nil {
			return
		}
		if int64(cap(buf)) < r.chunk {
			buf = make([]byte, r.chunk)
			c.buf = buf
		}
		c.err = r.fetch(c)
		close(c.done)
		if c.err != nil {
			r.cancel(c.err) // the stream cannot go past this chunk
		}
		// Hold the buffer until the caller is done with it, whatever happens meanwhile.
		select {
		case <-c.consumed:
		case <-r.closing:
			return
		}
		if c.err != nil {
			return
		}
	}
}

// fetch reads chunk c into its buffer: exactly c.n bytes.
func (r *Reader) fetch(c *poolChunk) error {
	return readRange(r.ctx, r.pool, r.src, r.key, r.policy, c.off, c.buf[:c.n])
}

// readRange reads exactly len(buf) bytes of key from byte off into buf, the open tried again
// under policy; a failure names the key and the byte range, and once ctx is done its cause is
// returned instead.
func readRange(ctx context.Context, p *Pool, src store.RangeOpener, key string, policy retry.Policy, off int64, buf []byte) error {
	want := len(buf)
	last := off + int64(want) - 1
	var rc io.ReadCloser
	err := retry.Do(ctx, policy, func(ctx context.Context) error {
		var err error
		rc, err = p.Meter(func() (io.ReadCloser, error) { return src.OpenRange(ctx, key, off, int64(want)) })
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("%s, bytes %d-%d: %w", key, off, last, err)
	}
	n, err := io.ReadFull(rc, buf)
	if err == nil {
		var one [1]byte
		if m, _ := rc.Read(one[:]); m > 0 {
			err = fmt.Errorf("the source sent more than the %d bytes asked for", want)
		}
	}
	rc.Close()
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("%s, bytes %d-%d: got %d of %d bytes: %w", key, off, last, n, want, err)
	}
	return nil
}

// Read hands on the object's bytes in order: from the base, or from a worker's chunk once it
// has arrived.
func (r *Reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	switch {
	case r.err != nil:
		err := r.err
		r.mu.Unlock()
		return 0, err
	case len(p) == 0:
		r.mu.Unlock()
		return 0, nil
	case r.pos >= r.size:
		r.mu.Unlock()
		return 0, io.EOF
	}
	i := r.pos / r.chunk
	c := r.owned[i]
	if c == nil && (r.body == nil || i >= r.baseEnd) {
		if i != r.next {
			r.mu.Unlock()
			return 0, r.fail(fmt.Errorf("read %s: chunk %d is nobody's (next %d): a bug", r.key, i, r.next))
		}
		if r.body != nil {
			r.body.Close()
			r.body = nil
		}
		// Nobody fetches chunk i (i == r.next): read it on the file's own connection, a bounded
		// window of chunks (see Reader).
		from, end := i, i+r.baseWindow()
		end = min(end, r.nchunks)
		r.next = end
		r.mu.Unlock()
		body, err := r.openBase(from, end)
		r.mu.Lock()
		if err != nil {
			r.mu.Unlock()
			return 0, r.fail(err)
		}
		r.body, r.baseFrom, r.baseEnd = body, from, end
		r.startProbe()
	}
	body := r.body
	r.mu.Unlock()
	if c != nil {
		return r.readChunk(c, p)
	}
	return r.readBase(body, i, p)
}

const (
	// maxBaseWindow is the most chunks one base request asks for (the window doubles up to it
	// while the file is fast): a file found slow within it gets its workers past it.
	maxBaseWindow = 16
	// slowBaseWindow is the base's window, in chunks, while the file is slow but has no worker
	// (no slot was free): a slot freed meanwhile is put to work within that many chunks.
	slowBaseWindow = 2
)

// baseWindow is how many chunks the base's next request asks for (under r.mu), and grows the
// window of a fast file.
func (r *Reader) baseWindow() int64 {
	switch {
	case r.workers > 0:
		return 1
	case r.slow:
		return slowBaseWindow
	}
	if r.window < 1 {
		r.window = 1
	}
	w := r.window
	r.window = min(2*r.window, maxBaseWindow)
	return w
}

// openBase opens chunks [from, end) on the file's own connection.
func (r *Reader) openBase(from, end int64) (io.ReadCloser, error) {
	off := from * r.chunk
	n := min(end*r.chunk, r.size) - off
	var rc io.ReadCloser
	err := retry.Do(r.ctx, r.policy, func(ctx context.Context) error {
		var err error
		rc, err = r.pool.Meter(func() (io.ReadCloser, error) { return r.src.OpenRange(ctx, r.key, off, n) })
		return err
	})
	if err != nil {
		if r.parent.Err() != nil {
			return nil, fmt.Errorf("read %s: %w", r.key, context.Cause(r.parent))
		}
		if r.ctx.Err() != nil {
			return nil, context.Cause(r.ctx)
		}
		return nil, fmt.Errorf("%s, bytes %d-%d: %w", r.key, off, off+n-1, err)
	}
	return rc, nil
}

// slowStrikes is how many probe periods in a row (each chunk/FastEnough long) must find the
// base slow, its caller waiting in Read, before the file wants range streams: one late period
// on a loaded machine (the reader descheduled inside Read, a pause of the garbage collector)
// says little about the link.
const slowStrikes = 2

// startProbe times the base's next chunk (under r.mu). A chunk in within chunk/FastEnough (one
// period) is fast. While it is not, each period in which the caller spent at least half the time
// waiting in Read is a strike, one in which it did not clears them, and slowStrikes in a row
// make the file want range streams. A file already slow is not timed again.
//
// The waiting makes the gate relative to what the reader itself can take: a caller that spends
// most of the time elsewhere (hashing, writing to a disk or a bucket, or waiting for the CPU on
// a loaded machine) is what sets the pace, and more connections would only add requests and
// copies. Only a connection that keeps its reader waiting, and is slow, is helped by more.
func (r *Reader) startProbe() {
	r.probeSeq++
	if r.probe != nil {
		if r.probe.Stop() && !r.late { // the chunk came within its first period
			r.strikes = 0
		}
		r.probe = nil
	}
	if r.slow || r.body == nil || r.closed {
		return
	}
	seq := r.probeSeq
	r.late = false
	r.startPeriod(time.Now())
	d := time.Duration(float64(min(r.chunk, r.size-r.pos)) / r.pool.fastEnough * float64(time.Second))
	var probe *time.Timer
	probe = time.AfterFunc(d, func() {
		r.mu.Lock()
		if r.closed || r.slow || seq != r.probeSeq {
			r.mu.Unlock()
			return
		}
		r.late = true
		now := time.Now()
		waited := r.waited
		if !r.waitSince.IsZero() {
			waited += now.Sub(r.waitSince)
		}
		if 2*waited < now.Sub(r.probeStart) {
			// The caller, not the connection, held the chunk back: not slow.
			r.strikes = 0
		} else if r.strikes++; r.strikes >= slowStrikes {
			r.slow = true
			r.mu.Unlock()
			r.pool.MarkSlow()
			r.pool.schedule()
			return
		}
		r.startPeriod(now)
		probe.Reset(d)
		r.mu.Unlock()
	})
	r.probe = probe
}

// startPeriod starts a probe period at now (under r.mu): the caller's wait is counted afresh.
func (r *Reader) startPeriod(now time.Time) {
	r.probeStart, r.waited = now, 0
	if !r.waitSince.IsZero() {
		r.waitSince = now
	}
}

// readBase reads from the base within chunk i.
func (r *Reader) readBase(body io.ReadCloser, i int64, p []byte) (int, error) {
	end := min((i+1)*r.chunk, r.size)
	if int64(len(p)) > end-r.pos {
		p = p[:end-r.pos]
	}
	r.mu.Lock()
	timed := r.probe != nil
	if timed {
		r.waitSince = time.Now()
	}
	r.mu.Unlock()
	n, err := body.Read(p)
	r.mu.Lock()
	if timed && !r.waitSince.IsZero() {
		r.waited += time.Since(r.waitSince)
	}
	r.waitSince = time.Time{}
	r.pos += int64(n)
	var done io.ReadCloser // the window's body, read to its end
	if r.pos == end {
		if r.pos/r.chunk >= r.baseEnd || r.pos == r.size {
			done, r.body = r.body, nil
		}
		r.startProbe()
		err = nil
	}
	r.mu.Unlock()
	if done != nil {
		// As a worker's range (readRange): a source sending more than asked is not trusted.
		// (Close cancels the request's context, so this read cannot hold it up.)
		var one [1]byte
		m, _ := done.Read(one[:])
		done.Close()
		if m > 0 {
			return n, r.fail(fmt.Errorf("%s, bytes %d-%d: the source sent more than the %d bytes asked for", r.key, r.baseFrom*r.chunk, end-1, end-r.baseFrom*r.chunk))
		}
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if r.parent.Err() != nil {
			return n, r.fail(fmt.Errorf("read %s: %w", r.key, context.Cause(r.parent)))
		}
		return n, r.fail(fmt.Errorf("%s, byte %d: %w", r.key, r.pos, err))
	}
	return n, nil
}

// readChunk reads from worker chunk c, waiting for it to arrive.
func (r *Reader) readChunk(c *poolChunk, p []byte) (int, error) {
	select {
	case <-c.done:
	case <-r.ctx.Done():
		return 0, r.fail(r.stopped())
	}
	if c.err != nil {
		if r.parent.Err() != nil {
			return 0, r.fail(r.stopped())
		}
		return 0, r.fail(c.err)
	}
	from := r.pos - c.off
	n := copy(p, c.buf[from:c.n])
	r.mu.Lock()
	r.pos += int64(n)
	done := r.pos == c.off+int64(c.n)
	if done {
		delete(r.owned, c.idx)
	}
	r.mu.Unlock()
	if done {
		close(c.consumed)
	}
	return n, nil
}

// stopped says why the reader's context ended: the caller's context, or a failed chunk.
func (r *Reader) stopped() error {
	if r.parent.Err() != nil {
		return fmt.Errorf("read %s: %w", r.key, context.Cause(r.parent))
	}
	return context.Cause(r.ctx)
}

func (r *Reader) fail(err error) error {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	r.cancel(err)
	return err
}

// Close stops the workers, waits for them (each gives its slot back to the pool) and closes
// the base.
func (r *Reader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	body := r.body
	r.body = nil
	if r.probe != nil {
		r.probe.Stop()
	}
	r.mu.Unlock()
	r.pool.forget(r)
	r.cancel(errRangedClosed)
	close(r.closing)
	if body != nil {
		body.Close()
	}
	r.wg.Wait()
	r.mu.Lock()
	if r.err == nil {
		r.err = fmt.Errorf("read %s: reader is closed", r.key)
	}
	r.mu.Unlock()
	return nil
}

// Streams is how many range streams the reader holds now (for tests).
func (r *Reader) Streams() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.workers
}
