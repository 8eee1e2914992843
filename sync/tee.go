package sync

import (
	"errors"
	"io"
	gosync "sync"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// tee hands one stream to several readers (one per target), each with its own queue. The
// queues share the chunks read: memory is what the slowest reader lags behind, not that times
// the readers. The source is read ahead of the fastest reader by at most readAhead bytes; a
// reader that would fall more than budget behind the fastest holds the stream back, for at most
// patience in all, then is given up on (ErrFellBehind).
type tee struct {
	mu        gosync.Mutex
	cond      *gosync.Cond
	budget    int64
	readAhead int64
	patience  time.Duration
	outs      []*teeOut
	ended     bool
	end       error // io.EOF, or the stream's failure
}

// chunk is one read from the source, queued for every reader that still reads; its buffer
// goes back to chunkPool when the last of them has consumed it.
type chunk struct {
	buf  *[]byte // the whole buffer (teeChunk bytes), from chunkPool
	data []byte  // what was read into it
	refs int
}

// chunkPool keeps chunk buffers from file to file: a fan-out run reads every file through them,
// and would otherwise leave the garbage collector a buffer per read.
var chunkPool = gosync.Pool{New: func() any { b := make([]byte, teeChunk); return &b }}

// release drops one reader's hold on c (under the tee's lock).
func (c *chunk) release() {
	if c.refs--; c.refs == 0 {
		chunkPool.Put(c.buf)
		c.buf, c.data = nil, nil
	}
}

// teeOut is one reader of a tee: the Put of one target.
type teeOut struct {
	t          *tee
	queue      []*chunk
	off        int // bytes of queue[0] already read
	queued     int64
	closed     bool          // its Put returned: nothing more is kept for it
	fellBehind bool          // given up on
	held       time.Duration // how long it has held the stream back
	gotEnd     bool          // it was handed the stream's failure
}

// errNoReader ends a pump whose readers all stopped (each failed on its own).
var errNoReader = errors.New("no target reads the file any more")

func newTee(n int, budget, readAhead int64) *tee {
	t := &tee{budget: budget, readAhead: readAhead}
	t.cond = gosync.NewCond(&t.mu)
	for range n {
		t.outs = append(t.outs, &teeOut{t: t})
	}
	return t
}

func (o *teeOut) live() bool { return !o.closed && !o.fellBehind }

func (o *teeOut) Read(p []byte) (int, error) {
	t := o.t
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(o.queue) == 0 && !o.fellBehind && !t.ended {
		t.cond.Wait()
	}
	if o.fellBehind {
		return 0, ErrFellBehind
	}
	if len(o.queue) == 0 {
		if t.end != io.EOF {
			o.gotEnd = true
		}
		return 0, t.end
	}
	c := o.queue[0]
	n := copy(p, c.data[o.off:])
	if o.off += n; o.off == len(c.data) {
		c.release()
		o.queue[0] = nil
		o.queue, o.off = o.queue[1:], 0
	}
	o.queued -= int64(n)
	t.cond.Broadcast()
	return n, nil
}

// close says the reader's Put returned.
func (o *teeOut) close() {
	t := o.t
	t.mu.Lock()
	o.drop()
	o.closed = true
	t.cond.Broadcast()
	t.mu.Unlock()
}

// drop lets go of what is queued for o (under the tee's lock).
func (o *teeOut) drop() {
	for _, c := range o.queue {
		c.release()
	}
	o.queue, o.off, o.queued = nil, 0, 0
}

// deliver queues c for every live reader, once the fastest has room for it (readAhead) and none
// would be more than budget behind the fastest with it: a reader that would is waited for, until
// it has held the stream back for patience in all, and then given up on. It returns false when no
// reader is left.
func (t *tee) deliver(c *chunk) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := int64(len(c.data))
	for {
		fastest := int64(-1)
		for _, o := range t.outs {
			if o.live() && (fastest < 0 || o.queued < fastest) {
				fastest = o.queued
			}
		}
		if fastest < 0 {
			c.refs = 1
			c.release()
			return false
		}
		if fastest+n > t.readAhead {
			t.cond.Wait()
			continue
		}
		// With c queued, a reader is o.queued-fastest behind the fastest.
		var late []*teeOut
		wait := time.Duration(-1)
		for _, o := range t.outs {
			if o.live() && o.queued-fastest > t.budget {
				if left := t.patience - o.held; left > 0 {
					late = append(late, o)
					if wait < 0 || left < wait {
						wait = left
					}
				} else {
					o.drop()
					o.fellBehind = true
				}
			}
		}
		if len(late) == 0 {
			break
		}
		start := time.Now()
		timer := time.AfterFunc(wait, func() {
			t.mu.Lock()
			t.cond.Broadcast()
			t.mu.Unlock()
		})
		t.cond.Wait()
		timer.Stop()
		for _, o := range late {
			o.held += time.Since(start)
		}
	}
	for _, o := range t.outs {
		if o.live() {
			o.queue = append(o.queue, c)
			c.refs++
			o.queued += n
		}
	}
	t.cond.Broadcast()
	return true
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
