package storetest

import (
	"context"
	"io"
	gosync "sync"
	"testing"

	"github.com/ssmirror/ssmirror/store"
)

// Chunked wraps s so that every Put is given a store.ChunkReader (as a fan-out's tee gives it)
// over the reader passed in, handing chunks of chunkSize bytes (an odd size makes chunks
// straddle a backend's parts). It checks what the ChunkReader contract asks of Put: every chunk
// is released once, all of them before Put returns (a failed Put too). A released chunk's bytes
// are overwritten at once, so that a backend still sending them sends garbage, which the
// suite's checks then see. Run the suite over it to test a backend's chunk path:
//
//	storetest.Run(t, func(t *testing.T) store.Target { return storetest.Chunked(t, newStore(t), 100_003) })
func Chunked(t testing.TB, s store.Target, chunkSize int) store.Target {
	return &chunked{Target: s, t: t, size: chunkSize}
}

type chunked struct {
	store.Target
	t    testing.TB
	size int
}

func (c *chunked) Unwrap() store.Source { return c.Target }

func (c *chunked) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	cr := &chunkReader{r: r, size: c.size}
	info, err := c.Target.Put(ctx, key, cr, opts)
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.out != 0 {
		c.t.Errorf("Put(%s) returned (error %v) holding %d chunks not released", key, err, cr.out)
	}
	if cr.read {
		c.t.Errorf("Put(%s) read a ChunkReader through Read", key)
	}
	return info, err
}

// chunkReader hands r's bytes as chunks of size bytes.
type chunkReader struct {
	r    io.Reader
	size int
	err  error // r's failure or end, handed after the bytes read before it

	mu   gosync.Mutex
	out  int  // chunks handed and not released
	read bool // Read was called
}

func (c *chunkReader) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.read = true
	c.mu.Unlock()
	return c.r.Read(p)
}

func (c *chunkReader) ReadChunk() ([]byte, func(), error) {
	if c.err != nil {
		return nil, nil, c.err
	}
	buf := make([]byte, c.size)
	n, err := io.ReadFull(c.r, buf)
	switch err {
	case nil:
	case io.ErrUnexpectedEOF:
		c.err = io.EOF
	default:
		c.err = err
	}
	if n == 0 {
		return nil, nil, c.err
	}
	c.mu.Lock()
	c.out++
	c.mu.Unlock()
	var once gosync.Once
	release := func() {
		released := false
		once.Do(func() {
			released = true
			for i := range buf {
				buf[i] = 0xA5
			}
			c.mu.Lock()
			c.out--
			c.mu.Unlock()
		})
		if !released {
			panic("storetest: a chunk released twice")
		}
	}
	return buf[:n], release, nil
}
