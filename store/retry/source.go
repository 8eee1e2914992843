package retry

import (
	"context"
	"io"

	"github.com/ssmirror/ssmirror/store"
)

// NewSource returns s with Stat, Open and (when s is a store.RangeOpener) OpenRange tried again
// under p. Only the call is retried, not the reading of the body it returns: a backend that can
// resume a body (the HTTP store) does so itself. The result is a store.RangeOpener exactly when s
// is one, and its Unwrap method returns s.
func NewSource(s store.Source, p Policy) store.Source {
	src := &source{s: s, p: p}
	if ro, ok := store.As[store.RangeOpener](s); ok {
		return &rangeSource{source: src, ro: ro}
	}
	return src
}

type source struct {
	s store.Source
	p Policy
}

// Unwrap returns the wrapped store.
func (s *source) Unwrap() store.Source { return s.s }

func (s *source) Stat(ctx context.Context, key string) (store.Info, error) {
	var info store.Info
	err := Do(ctx, s.p, func(ctx context.Context) error {
		var err error
		info, err = s.s.Stat(ctx, key)
		return err
	})
	return info, err
}

func (s *source) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := Do(ctx, s.p, func(ctx context.Context) error {
		var err error
		rc, err = s.s.Open(ctx, key, offset)
		return err
	})
	return rc, err
}

type rangeSource struct {
	*source
	ro store.RangeOpener
}

func (s *rangeSource) OpenRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := Do(ctx, s.p, func(ctx context.Context) error {
		var err error
		rc, err = s.ro.OpenRange(ctx, key, offset, length)
		return err
	})
	return rc, err
}
