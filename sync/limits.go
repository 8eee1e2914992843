package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// ErrTooLarge is wrapped by the error of a run whose selection holds an item larger than
// Options.MaxFileSize (or with a negative size).
var ErrTooLarge = errors.New("larger than the maximum file size")

// ErrTooSlow is wrapped by the error of a file that did not arrive within its deadline.
var ErrTooSlow = errors.New("took longer than its deadline")

// checkSizes refuses a plan that holds an item whose declared size is negative or above limit
// (limit < 0: no limit), naming each (up to ten) with its path and size.
func checkSizes(held Held, limit int64) error {
	var bad []string
	n := 0
	for _, vk := range held.Keys() {
		for _, name := range sortedItems(held[vk]) {
			hi := held[vk][name]
			if hi.Path == "" || hi.Size >= 0 && (limit < 0 || hi.Size <= limit) {
				continue
			}
			n++
			if len(bad) < 10 {
				what := fmt.Sprintf("%d bytes", hi.Size)
				if hi.Size < 0 {
					what = fmt.Sprintf("a negative size (%d)", hi.Size)
				}
				bad = append(bad, fmt.Sprintf("%s/%s/%s/%s: %s: %s", vk.ContentID, vk.Product, vk.Version, name, hi.Path, what))
			}
		}
	}
	if n == 0 {
		return nil
	}
	if n > len(bad) {
		bad = append(bad, fmt.Sprintf("… and %d more", n-len(bad)))
	}
	return fmt.Errorf("refusing %d item(s) %w (%d bytes); nothing was written:\n  %s", n, ErrTooLarge, limit, strings.Join(bad, "\n  "))
}

// fileDeadline is how long a file of size bytes may take under settled limits: the base plus
// its size at the minimum rate; 0 means no deadline.
func (o *Limits) fileDeadline(size int64) time.Duration {
	if o.MinRate < 0 {
		return 0
	}
	d := float64(o.FileDeadlineBase) + float64(max(size, 0))/float64(o.MinRate)*float64(time.Second)
	if d >= math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return time.Duration(d)
}

// withFileDeadline bounds one step of the transfer of a file of size bytes (a check, a copy, a
// download, a Put) under parent: the context's cause says why it ended. end releases the
// context, and makes *err (when not nil) say so when the file's own deadline is what ended the
// step, whatever the read or write in flight made of it.
func (o *Limits) withFileDeadline(parent context.Context, size int64) (ctx context.Context, end func(err *error)) {
	d := o.fileDeadline(size)
	if d == 0 {
		return parent, func(*error) {}
	}
	// The path is not in the message: every error of a fetch already starts with it.
	ctx, cancel := context.WithTimeoutCause(parent, d, fmt.Errorf("%w: %v for %d bytes (%v plus the size at the minimum rate of %d bytes/s)",
		ErrTooSlow, d.Round(time.Millisecond), size, o.FileDeadlineBase, o.MinRate))
	return ctx, func(err *error) {
		if *err != nil && parent.Err() == nil && ctx.Err() != nil {
			if cause := context.Cause(ctx); !errors.Is(*err, cause) {
				*err = fmt.Errorf("%w (%w)", *err, cause)
			}
		}
		cancel()
	}
}

// rateGuarded is a source whose readers fail once they fall behind the minimum rate: after the
// base time, at least MinRate bytes a second since. Metadata is read through it, where the size
// is not known before the file is opened; the stall timeout of the HTTP source still catches a
// body that stops altogether.
type rateGuarded struct {
	store.Source
	base time.Duration
	rate int64
	now  func() time.Time
}

func (g rateGuarded) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	rc, err := g.Source.Open(ctx, key, offset)
	if err != nil {
		return nil, err
	}
	return &rateReader{rc: rc, start: g.now(), now: g.now, base: g.base, rate: g.rate}, nil
}

// Unwrap gives the guarded source, so its optional abilities are still found (store.As).
func (g rateGuarded) Unwrap() store.Source { return g.Source }

type rateReader struct {
	rc    io.ReadCloser
	start time.Time
	now   func() time.Time
	base  time.Duration
	rate  int64
	n     int64
}

func (r *rateReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.n += int64(n)
	if err == nil {
		if late := r.now().Sub(r.start) - r.base; late > 0 && float64(r.n) < late.Seconds()*float64(r.rate) {
			// No key: ReadAll names it.
			return n, fmt.Errorf("%w: %d bytes in %v, slower than the minimum rate of %d bytes/s", ErrTooSlow, r.n, (late + r.base).Round(time.Millisecond), r.rate)
		}
	}
	return n, err
}

func (r *rateReader) Close() error { return r.rc.Close() }

// Size passes on what the source knows of the size (store.Sizer).
func (r *rateReader) Size() int64 {
	if s, ok := r.rc.(store.Sizer); ok {
		return s.Size()
	}
	return -1
}
