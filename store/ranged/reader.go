// Package ranged reads objects as consecutive byte ranges fetched in parallel from a
// store.RangeOpener (an HTTP source), handed on strictly in order as one stream, in a bounded
// number of buffers. Pool (what sync uses) shares range streams among all the files in flight,
// adding them to a file while its own connection is slow; NewReader reads one object with a
// fixed set of caller-supplied buffers.
package ranged

import (
	"context"
	"errors"
	"fmt"
	"io"
	gosync "sync"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/retry"
)

// errRangedClosed stops the workers of a reader that was closed.
var errRangedClosed = errors.New("ranged reader closed")

// Options are the optional parts of a Reader.
type Options struct {
	// Policy is how a chunk that cannot be opened is tried again (zero: once).
	Policy retry.Policy
	// Release takes the buffers back on Close (nil: they are dropped).
	Release func([][]byte)
}

// NewReader reads key (size bytes) from src in chunks of chunk bytes, len(bufs)-1 of them
// fetched at once (at least one), into the given buffers: a nil or too short entry is allocated
// when first needed. It holds at most len(bufs) chunks in memory. Reading it yields the object's
// bytes in order; a chunk that fails for good fails the read with an error naming the key and
// the byte range. Close stops the fetches, waits for them and hands bufs to opts.Release.
func NewReader(ctx context.Context, src store.RangeOpener, key string, size, chunk int64, bufs [][]byte, opts Options) io.ReadCloser {
	r := unstartedRangedReader(ctx, src, key, size, chunk, bufs)
	r.policy = opts.Policy
	r.release = opts.Release
	return r.start()
}

// rangedReader reads one object as consecutive chunks [i×chunk, min(size, (i+1)×chunk))
// fetched by several workers at once, each into its own buffer, and hands them on strictly in
// order, so whoever reads it (the target's hashing Put, a multipart upload) sees one continuous
// stream. It holds at most len(bufs) chunks (the window: streams+1) in memory at once: a chunk
// is fetched only once a buffer is free, and a buffer is freed only when its chunk has been read,
// so chunk i+window never starts before chunk i has been consumed.
//
// A chunk that cannot be opened is tried again under Options.Policy (like a whole file's open
// in sync); a body that breaks is resumed by the store itself, and a chunk that still fails,
// or comes out short or long, fails the reader with an error naming the key and the byte range.
// Read is not safe for concurrent use (like any reader); Close stops the workers and waits for
// them.
type rangedReader struct {
	parent  context.Context
	ctx     context.Context // cancelled by Close or by the first chunk failure (its cause)
	cancel  context.CancelCauseFunc
	src     store.RangeOpener
	key     string
	size    int64
	chunk   int64
	nchunks int64
	policy  retry.Policy   // how a chunk's open is tried again
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

// unstartedRangedReader is a reader before start, each chunk tried once: its fields may still
// be set.
func unstartedRangedReader(ctx context.Context, src store.RangeOpener, key string, size, chunk int64, bufs [][]byte) *rangedReader {
	r := &rangedReader{
		parent:  ctx,
		src:     src,
		key:     key,
		size:    size,
		chunk:   chunk,
		nchunks: (size + chunk - 1) / chunk,
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
	return readRange(r.ctx, r.src, r.key, r.policy, c.off, buf[:c.n])
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
