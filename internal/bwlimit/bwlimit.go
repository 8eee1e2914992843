// Package bwlimit caps the bytes a run reads from its source per second, all connections
// together: one token bucket that every reader of a wrapped store draws from, ranged reads
// (store.RangeOpener) included.
package bwlimit

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// Limiter is a token bucket of rate bytes a second. Readers take tokens for the bytes they got
// and wait, when the bucket is in debt, until it has refilled; the debt of one reader makes the
// next ones wait too, so the sum over all readers follows the rate.
type Limiter struct {
	rate  float64
	burst float64
	chunk int
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// New returns a limiter of rate bytes a second (rate > 0). now and sleep may be nil (the wall
// clock); tests inject both.
func New(rate int64, now func() time.Time, sleep func(context.Context, time.Duration) error) *Limiter {
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepCtx
	}
	// One read takes at most a tenth of a second's worth (between 1 KiB and 256 KiB), so that a
	// reader waits in small steps and many readers share the rate fairly.
	chunk := rate / 10
	chunk = max(chunk, 1<<10)
	chunk = min(chunk, 256<<10)
	return &Limiter{rate: float64(rate), burst: float64(chunk), chunk: int(chunk), now: now, sleep: sleep, tokens: float64(chunk), last: now()}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// take debits n bytes and returns how long the caller must wait before going on.
func (l *Limiter) take(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if el := now.Sub(l.last); el > 0 {
		l.tokens = min(l.burst, l.tokens+el.Seconds()*l.rate)
		l.last = now
	}
	l.tokens -= float64(n)
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}

// Wait accounts for n bytes read and waits until the rate allows them.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if d := l.take(n); d > 0 {
		return l.sleep(ctx, d)
	}
	return nil
}

// Reader wraps rc so that its reads draw from l; ctx ends a wait.
func (l *Limiter) Reader(ctx context.Context, rc io.ReadCloser) io.ReadCloser {
	return &reader{rc: rc, l: l, ctx: ctx}
}

type reader struct {
	rc  io.ReadCloser
	l   *Limiter
	ctx context.Context
}

func (r *reader) Read(p []byte) (int, error) {
	if len(p) > r.l.chunk {
		p = p[:r.l.chunk]
	}
	n, err := r.rc.Read(p)
	if n > 0 {
		if werr := r.l.Wait(r.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

func (r *reader) Close() error { return r.rc.Close() }

// Size passes on what the source knows of the size (store.Sizer).
func (r *reader) Size() int64 {
	if s, ok := r.rc.(store.Sizer); ok {
		return s.Size()
	}
	return -1
}

// Store returns src with every reader it opens drawing from l. The result is a
// store.RangeOpener when src is one (found with store.As), with its ranged reads limited too;
// it unwraps to src (store.Unwrapper), so src's other abilities are still found.
func Store(src store.Source, l *Limiter) store.Source {
	s := limited{src, l}
	if ro, ok := store.As[store.RangeOpener](src); ok {
		return limitedRange{s, ro}
	}
	return s
}

type limited struct {
	store.Source
	l *Limiter
}

func (s limited) Unwrap() store.Source { return s.Source }

func (s limited) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	rc, err := s.Source.Open(ctx, key, offset)
	if err != nil {
		return nil, err
	}
	return s.l.Reader(ctx, rc), nil
}

type limitedRange struct {
	limited
	ro store.RangeOpener
}

func (s limitedRange) OpenRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := s.ro.OpenRange(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	return s.l.Reader(ctx, rc), nil
}
