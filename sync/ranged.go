package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	gosync "sync"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// Defaults for ranged downloads (Options.RangeStreams, RangeChunk, RangeFiles). Measured with
// scripts/bench over scripts/linkemu (20 MB/s per connection, 30 ms), into MinIO. One ~1 GB
// file: 5 × 4 MiB took 12.8 s at 81 MB peak RSS, 4 × 4 MiB 15.8 s at 76 MB, 4 × 8 MiB 15.0 s
// at 111 MB, 6 × 2 MiB 12.1 s at 61 MB; one connection (curl) 52.7 s. The 1.5 GB stream
// (4 files at once, 8 MiB parts, 24 MiB of part buffers): one file ranged at 5 × 4 MiB 16.7 s,
// two at 6 × 2 MiB 11.7-13.3 s and 91 MB, three at 6 × 2 MiB 9.7 s but 104 MB, three at
// 5 × 2 MiB 10.1-10.2 s and 100 MB (32 MiB of part buffers); rclone 21.1 s.
const (
	DefaultRangeStreams = 5
	DefaultRangeChunk   = 2 << 20
	DefaultRangeFiles   = 3
)

// rangedMinChunks: a file shorter than this many chunks is fetched with one request; below it,
// the request per chunk costs more than the extra connections bring.
const rangedMinChunks = 4

// errRangedClosed stops the workers of a reader that was closed.
var errRangedClosed = errors.New("ranged reader closed")

// rangeBudget is the chunk buffers one run may hold for ranged downloads, shared by every file
// of the run and reused from file to file. A file takes buffers without waiting and falls back to
// one request when too few are free, so files never wait on one another for memory.
type rangeBudget struct {
	slots chan []byte // one entry per buffer the run may hold; nil until first allocated
}

func newRangeBudget(n int) *rangeBudget {
	b := &rangeBudget{slots: make(chan []byte, n)}
	for range n {
		b.slots <- nil
	}
	return b
}

// take returns up to n buffers (some may be nil: not allocated yet) without waiting.
func (b *rangeBudget) take(n int) [][]byte {
	var bufs [][]byte
	for len(bufs) < n {
		select {
		case buf := <-b.slots:
			bufs = append(bufs, buf)
		default:
			return bufs
		}
	}
	return bufs
}

// give returns buffers taken with take.
func (b *rangeBudget) give(bufs [][]byte) {
	for _, buf := range bufs {
		b.slots <- buf
	}
}

// rangeParams returns the ranged-download settings with defaults applied: streams per file,
// the chunk size, and how many chunk buffers a run may hold (0: ranged downloads are off).
func (o *Options) rangeParams() (streams int, chunk int64, slots int) {
	streams, chunk = o.RangeStreams, o.RangeChunk
	if streams <= 0 {
		streams = DefaultRangeStreams
	}
	if chunk <= 0 {
		chunk = DefaultRangeChunk
	}
	if streams <= 1 {
		return streams, chunk, 0
	}
	files := o.RangeFiles
	if files <= 0 {
		files = DefaultRangeFiles
	}
	return streams, chunk, files * (streams + 1)
}

// openRanged returns a reader fetching f from src in parallel ranges, or nil when that does not
// apply: the source cannot serve bounded ranges (only HTTP can; reading a directory in pieces
// gains nothing), ranged downloads are off, the file is small, or the run's buffers are taken.
func (r *run) openRanged(ctx context.Context, src store.Store, f Fetch) io.ReadCloser {
	ro, ok := src.(store.RangeOpener)
	if !ok {
		return nil
	}
	streams, chunk, _ := r.opts.rangeParams()
	budget := r.ranged()
	if budget == nil || f.Size < rangedMinChunks*chunk {
		return nil
	}
	bufs := budget.take(streams + 1)
	if len(bufs) < 3 {
		// Two streams and the chunk being consumed, or it is no better than one request.
		budget.give(bufs)
		return nil
	}
	rr := newRangedReaderBufs(ctx, ro, f.Path, f.Size, chunk, bufs)
	rr.release = budget.give
	return rr
}

// rangedReader reads one object as consecutive chunks [i×chunk, min(size, (i+1)×chunk))
// fetched by several workers at once, each into its own buffer, and hands them on strictly in
// order, so whoever reads it (the target's hashing Put, a multipart upload) sees one continuous
// stream. It holds at most len(bufs) chunks (the window: streams+1) in memory at once: a chunk
// is fetched only once a buffer is free, and a buffer is freed only when its chunk has been read,
// so chunk i+window never starts before chunk i has been consumed.
//
// A chunk that cannot be opened is tried again (like a whole file in transferOne); a body that
// breaks is resumed by the store itself, and a chunk that still fails, or comes out short or
// long, fails the reader with an error naming the key and the byte range. Read is not safe for
// concurrent use (like any reader); Close stops the workers and waits for them.
type rangedReader struct {
	parent  context.Context
	ctx     context.Context // cancelled by Close or by the first chunk failure (its cause)
	cancel  context.CancelCauseFunc
	src     store.RangeOpener
	key     string
	size    int64
	chunk   int64
	nchunks int64
	backoff func(attempt int) time.Duration
	release func([][]byte) // takes the buffers back on Close (nil: dropped)

	bufs  [][]byte         // one per window slot; a nil or short entry is allocated by its worker
	free  chan int         // indices into bufs of the buffers not holding a chunk
	order chan *rangeChunk // chunks handed to workers, in order
	jobs  chan *rangeChunk
	wg    gosync.WaitGroup

	cur    *rangeChunk // the chunk being read
	off    int         // read position in cur
	next   int64       // chunks fully read
	err    error       // sticky failure
	closed bool
}

type rangeChunk struct {
	off  int64 // first byte in the object
	n    int   // length
	slot int   // index into bufs
	err  error
	done chan struct{} // closed when the chunk is in its buffer or err is set
}

// newRangedReader reads key (size bytes) from src in chunks of chunk bytes, streams of them at
// once; it allocates its own streams+1 buffers.
func newRangedReader(ctx context.Context, src store.RangeOpener, key string, size int64, streams int, chunk int64) *rangedReader {
	return newRangedReaderBufs(ctx, src, key, size, chunk, make([][]byte, max(streams, 1)+1))
}

// newRangedReaderBufs is newRangedReader with len(bufs)-1 streams over the given buffers.
func newRangedReaderBufs(ctx context.Context, src store.RangeOpener, key string, size, chunk int64, bufs [][]byte) *rangedReader {
	return unstartedRangedReader(ctx, src, key, size, chunk, bufs).start()
}

// unstartedRangedReader is newRangedReaderBufs before start: its fields may still be set.
func unstartedRangedReader(ctx context.Context, src store.RangeOpener, key string, size, chunk int64, bufs [][]byte) *rangedReader {
	r := &rangedReader{
		parent:  ctx,
		src:     src,
		key:     key,
		size:    size,
		chunk:   chunk,
		nchunks: (size + chunk - 1) / chunk,
		backoff: fetchBackoff,
		bufs:    bufs,
		free:    make(chan int, len(bufs)),
		order:   make(chan *rangeChunk, len(bufs)),
		jobs:    make(chan *rangeChunk),
	}
	return r
}

// start launches the reader's workers; the reader's fields are not changed after this.
func (r *rangedReader) start() *rangedReader {
	r.ctx, r.cancel = context.WithCancelCause(r.parent)
	for i := range r.bufs {
		r.free <- i
	}
	workers := int(min(int64(len(r.bufs)-1), r.nchunks))
	r.wg.Add(1 + workers)
	go r.dispatch()
	for range workers {
		go r.work()
	}
	return r
}

// dispatch hands the chunks, in order, to the workers, each once a buffer is free for it.
func (r *rangedReader) dispatch() {
	defer r.wg.Done()
	defer close(r.jobs)
	for i := range r.nchunks {
		var slot int
		select {
		case slot = <-r.free:
		case <-r.ctx.Done():
			return
		}
		off := i * r.chunk
		c := &rangeChunk{off: off, n: int(min(r.chunk, r.size-off)), slot: slot, done: make(chan struct{})}
		r.order <- c // never blocks: every queued chunk holds one of len(bufs) buffers
		select {
		case r.jobs <- c:
		case <-r.ctx.Done():
			return
		}
	}
}

func (r *rangedReader) work() {
	defer r.wg.Done()
	for c := range r.jobs {
		c.err = r.fetch(c)
		if c.err != nil {
			// Stop the others at once: the stream cannot go past this chunk.
			r.cancel(c.err)
		}
		close(c.done)
	}
}

// fetch reads chunk c into its buffer: exactly c.n bytes.
func (r *rangedReader) fetch(c *rangeChunk) error {
	buf := r.bufs[c.slot]
	if int64(cap(buf)) < r.chunk {
		buf = make([]byte, r.chunk)
		r.bufs[c.slot] = buf
	}
	buf = buf[:c.n]
	last := c.off + int64(c.n) - 1
	for attempt := 1; ; attempt++ {
		rc, err := r.src.OpenRange(r.ctx, r.key, c.off, int64(c.n))
		if err != nil {
			if r.ctx.Err() != nil {
				return context.Cause(r.ctx)
			}
			if attempt < maxOpenAttempts && retryableOpen(err) {
				t := time.NewTimer(r.backoff(attempt))
				select {
				case <-r.ctx.Done():
					t.Stop()
					return context.Cause(r.ctx)
				case <-t.C:
				}
				continue
			}
			if attempt > 1 {
				return fmt.Errorf("%s, bytes %d-%d: %w (after %d attempts)", r.key, c.off, last, err, attempt)
			}
			return fmt.Errorf("%s, bytes %d-%d: %w", r.key, c.off, last, err)
		}
		n, err := io.ReadFull(rc, buf)
		if err == nil {
			var one [1]byte
			if m, _ := rc.Read(one[:]); m > 0 {
				err = fmt.Errorf("the source sent more than the %d bytes asked for", c.n)
			}
		}
		rc.Close()
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			if r.ctx.Err() != nil {
				return context.Cause(r.ctx)
			}
			return fmt.Errorf("%s, bytes %d-%d: got %d of %d bytes: %w", r.key, c.off, last, n, c.n, err)
		}
		return nil
	}
}

// Read hands on the chunks in order, waiting for the next one when it has not arrived yet.
func (r *rangedReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.cur == nil {
		if r.next == r.nchunks {
			return 0, io.EOF
		}
		var c *rangeChunk
		select {
		case c = <-r.order:
		case <-r.ctx.Done():
			return 0, r.fail(r.stopped())
		}
		select {
		case <-c.done:
		case <-r.ctx.Done():
			return 0, r.fail(r.stopped())
		}
		if c.err != nil {
			if r.parent.Err() != nil {
				// The chunk failed because the caller cancelled (both cases of the select above
				// can be ready at once): say so, naming the key.
				return 0, r.fail(r.stopped())
			}
			return 0, r.fail(c.err)
		}
		r.cur, r.off = c, 0
	}
	n := copy(p, r.bufs[r.cur.slot][r.off:r.cur.n])
	r.off += n
	if r.off == r.cur.n {
		r.free <- r.cur.slot // never blocks: there are len(bufs) slots
		r.cur = nil
		r.next++
	}
	return n, nil
}

// stopped says why the reader's context ended: the caller's context, or a failed chunk (whose
// error names the key).
func (r *rangedReader) stopped() error {
	if r.parent.Err() != nil {
		return fmt.Errorf("read %s: %w", r.key, context.Cause(r.parent))
	}
	return context.Cause(r.ctx)
}

func (r *rangedReader) fail(err error) error {
	r.err = err
	r.cancel(err)
	return err
}

// Close stops the workers, waits for them and gives the buffers back.
func (r *rangedReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.cancel(errRangedClosed)
	r.wg.Wait()
	if r.err == nil {
		r.err = fmt.Errorf("read %s: reader is closed", r.key)
	}
	if r.release != nil {
		r.release(r.bufs)
	}
	r.bufs = nil
	return nil
}
