package bwlimit

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// fakeClock advances only when a reader sleeps: the time the limiter makes readers wait is
// exactly the clock's end minus its start.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return nil
}

// Several readers read through one limiter in turn: the bytes they get together over the
// (fake) time follow the rate, whatever the number of readers.
func TestLimiterRateAllReadersTogether(t *testing.T) {
	const rate = 1 << 20 // 1 MiB/s
	for _, readers := range []int{1, 3, 8} {
		clk := &fakeClock{t: time.Unix(1e9, 0)}
		start := clk.now()
		l := New(rate, clk.now, clk.sleep)
		rs := make([]io.Reader, readers)
		for i := range rs {
			rs[i] = l.Reader(t.Context(), io.NopCloser(bytes.NewReader(make([]byte, 4<<20))))
		}
		var total int64
		buf := make([]byte, 1<<20)
		for done := 0; done < readers; {
			done = 0
			for _, r := range rs {
				n, err := r.Read(buf)
				total += int64(n)
				if err == io.EOF {
					done++
				}
				if n > rate/10 {
					t.Fatalf("one read returned %d bytes, more than a tenth of a second's worth", n)
				}
			}
		}
		el := clk.now().Sub(start)
		want := time.Duration(float64(total-rate/10) / rate * float64(time.Second)) // the first burst is free
		if total != int64(readers)*4<<20 || el < want-time.Millisecond || el > want+time.Millisecond {
			t.Errorf("%d readers: %d bytes in %v, want %v at %d B/s", readers, total, el, want, rate)
		}
	}
}

// Waiting ends with the context.
func TestLimiterWaitHonoursContext(t *testing.T) {
	l := New(1024, nil, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := l.Reader(ctx, io.NopCloser(strings.NewReader(strings.Repeat("x", 10<<10))))
	var err error
	for i := 0; i < 3 && err == nil; i++ {
		_, err = r.Read(make([]byte, 4096))
	}
	if err == nil {
		t.Fatal("reads went on past a cancelled context")
	}
}

type rangeStore struct{ store.Source }

func (rangeStore) Open(ctx context.Context, key string, off int64) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("abcdef"[off:])), nil
}
func (rangeStore) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("abcdef"[off : off+n])), nil
}

// A source that reads ranges stays one when limited, and its ranged reads draw from the bucket.
func TestStoreKeepsRangeOpener(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	l := New(2048, clk.now, clk.sleep) // chunk and burst 1 KiB
	l.tokens = 0
	s := Store(rangeStore{}, l)
	ro, ok := store.As[store.RangeOpener](s)
	if !ok {
		t.Fatal("the limited store lost OpenRange")
	}
	rc, _ := ro.OpenRange(t.Context(), "k", 1, 4)
	b, _ := io.ReadAll(rc)
	if string(b) != "bcde" || clk.now().Sub(time.Unix(1e9, 0)) != 4*time.Second/2048 {
		t.Fatalf("ranged read gave %q after %v", b, clk.now().Sub(time.Unix(1e9, 0)))
	}
	if _, ok := store.As[store.RangeOpener](Store(struct{ store.Source }{rangeStore{}}, l)); ok {
		t.Fatal("a store without OpenRange gained it")
	}
	if u, ok := s.(store.Unwrapper); !ok || u.Unwrap() != store.Source(rangeStore{}) {
		t.Fatal("the limited store does not unwrap to its source")
	}
}
