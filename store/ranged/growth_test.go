package ranged

import (
	"context"
	"io"
	gosync "sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestJudge: the rule's judgement of a jump against a baseline (the link was found slow by a
// file whose own connection brought bytes for long enough).
func TestJudge(t *testing.T) {
	// Four connections brought 8 MB/s (2 MB/s each, round trips included).
	base := window{secs: 1, flight: 4, rate: 8e6, perFly: 2e6}
	for _, tc := range []struct {
		name      string
		jump      window
		wantCut   bool
		wantLimit int
	}{
		// 15 slots added, 19 connections: each brought as much as before.
		{"per connection", window{secs: 0.2, flight: 19, rate: 36e6}, false, 15},
		// A quarter of what the added connections would bring at 2 MB/s each is 7.5 MB/s more.
		{"just enough", window{secs: 0.2, flight: 19, rate: 15.6e6}, false, 15},
		// The aggregate barely rose: 10 MB/s, carried by 5 connections at 2 MB/s, 8 with
		// headroom, of which 4 are the caller's: 4 slots.
		{"in total", window{secs: 0.2, flight: 19, rate: 10e6}, true, 4},
		{"in total, no gain", window{secs: 0.2, flight: 19, rate: 7e6}, true, 2},
		// No more connections in flight than before: nothing to compare.
		{"not taken", window{secs: 0.2, flight: 4, rate: 8e6}, false, 15},
	} {
		limit, cut, reason := judge(base, tc.jump, 15, 4)
		if cut != tc.wantCut || limit != tc.wantLimit {
			t.Errorf("%s: limit %d, cut %v (%s); want %d, %v", tc.name, limit, cut, reason, tc.wantLimit, tc.wantCut)
		}
	}
	if got := stepLimit(window{flight: 18.6}, 15, 4); got != 6 {
		t.Errorf("step back from 18.6 connections in flight, 4 the caller's: %d slots, want 6", got)
	}
	if got := stepLimit(window{flight: 5}, 15, 4); got != 1 {
		t.Errorf("step back from 5 connections in flight, 4 the caller's: %d slots, want 1", got)
	}
}

// pacedLink is a source of small files of size bytes each (the first four tiny, when set), as
// a link would bring them: each
// answer after rtt, then the body at perConn bytes per second (0: no such limit) and through
// one budget of total bytes per second all bodies share (0: none), in pieces of 16 KiB. It
// counts the requests in flight (from the open to the body's close).
type pacedLink struct {
	rtt            time.Duration
	perConn, total float64
	size           int
	tinyFirst      bool // the first four files are 4 KiB: no baseline (the rule steps back)

	mu       gosync.Mutex
	clock    time.Time // the shared budget's virtual clock
	inFlight int
	most     int   // the most requests in flight at once
	seen     []int // requests in flight, the new one included, as each request came
}

func (l *pacedLink) open(i int) (io.ReadCloser, error) {
	l.mu.Lock()
	l.inFlight++
	l.most = max(l.most, l.inFlight)
	l.seen = append(l.seen, l.inFlight)
	l.mu.Unlock()
	time.Sleep(l.rtt)
	size := l.size
	if l.tinyFirst && i < 4 {
		size = 4 << 10
	}
	return &pacedBody{l: l, left: size}, nil
}

// wait pays for n bytes on the shared budget and on the body's own clock, and sleeps until both
// allow them.
func (l *pacedLink) wait(b *pacedBody, n int) {
	now := time.Now()
	until := now
	if l.perConn > 0 {
		if b.clock.Before(now) {
			b.clock = now
		}
		b.clock = b.clock.Add(time.Duration(float64(n) / l.perConn * float64(time.Second)))
		until = b.clock
	}
	if l.total > 0 {
		l.mu.Lock()
		if l.clock.Before(now) {
			l.clock = now
		}
		l.clock = l.clock.Add(time.Duration(float64(n) / l.total * float64(time.Second)))
		until = later(until, l.clock)
		l.mu.Unlock()
	}
	time.Sleep(until.Sub(now))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

type pacedBody struct {
	l      *pacedLink
	left   int
	clock  time.Time
	closed bool
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), b.left, 16<<10)
	b.l.wait(b, n)
	b.left -= n
	return n, nil
}

func (b *pacedBody) Close() error {
	if !b.closed {
		b.closed = true
		b.l.mu.Lock()
		b.l.inFlight--
		b.l.mu.Unlock()
	}
	return nil
}

// mirrorSmallFiles fetches n small files from l the way a run does (sync's eachFile): others
// workers one file at a time, and beyond them, on a link found slow, one file on each slot
// the pool lends (Pool.Borrow). Every fetch goes through the pool's meter; the link is found
// slow once four files came. It returns the pool's judgement.
func mirrorSmallFiles(t *testing.T, l *pacedLink, n, slots, others int) (Judgement, *Pool) {
	t.Helper()
	var j Judgement
	judged := 0
	p := NewPool(slots, 1<<20, PoolOptions{FastEnough: 48 << 20, Others: others, Judged: func(got Judgement) { j = got; judged++ }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	work := make(chan int)
	var done gosync.WaitGroup
	var fetched gosync.WaitGroup
	fetched.Add(4)
	fetch := func(i int) {
		rc, err := p.Meter(func() (io.ReadCloser, error) { return l.open(i) })
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Error(err)
		}
		rc.Close()
	}
	var count gosync.Once
	var mu gosync.Mutex
	got := 0
	noteFetched := func() {
		mu.Lock()
		got++
		if got <= 4 {
			fetched.Done()
		}
		mu.Unlock()
	}
	for range others {
		done.Go(func() {
			for i := range work {
				fetch(i)
				noteFetched()
			}
		})
	}
	go func() {
		fetched.Wait()
		count.Do(p.MarkSlow)
	}()
	for range slots {
		done.Go(func() {
			for {
				giveBack, ok := p.Borrow(ctx)
				if !ok {
					return
				}
				i, more := <-work
				if !more {
					giveBack()
					return
				}
				fetch(i)
				noteFetched()
				giveBack()
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	cancel()
	done.Wait()
	synctest.Wait()
	time.Sleep(10 * time.Second) // the rule's last window, if the run ended before it
	synctest.Wait()
	if judged != 1 {
		t.Fatalf("the rule judged %d times, want once", judged)
	}
	return j, p
}

// TestGrowthTotalLinkCut: over a link limited in total (8 MB/s for all connections, 4 MB/s
// each, 30 ms round trips), the jump to every slot brings nothing fewer connections would not,
// and the rule cuts the slots in use: judged against the baseline when the first files moved
// bytes for long enough, by steps back when they were tiny; the rate holds after the cut and
// the cut is kept (to at most half the slots). The requests of the second half had at most the cut's connections in
// flight (with every slot lent, as before the rule, they had 4 + 12).
func TestGrowthTotalLinkCut(t *testing.T) {
	for _, tiny := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			const slots, others = 12, 4
			l := &pacedLink{rtt: 30 * time.Millisecond, perConn: 4e6, total: 8e6, size: 256 << 10, tinyFirst: tiny}
			j, p := mirrorSmallFiles(t, l, 200, slots, others)
			t.Logf("tiny first files %v: judgement %+v", tiny, j)
			if !j.Cut || j.StepBack != tiny || p.Limit() > slots/2 {
				t.Fatalf("tiny first files %v: limit %d of %d slots, judgement %+v: want a cut kept, to at most half (step back: %v)", tiny, p.Limit(), slots, j, tiny)
			}
			for i, n := range l.seen[len(l.seen)/2:] {
				if n > others+p.Limit()+1 {
					t.Fatalf("request %d of the second half came with %d in flight, over %d (the caller's %d, the cut's %d slots, one closing)", i, n, others+p.Limit()+1, others, p.Limit())
				}
			}
		})
	}
}

// TestGrowthPerConnectionLinkKeepsEverySlot: over a link limited per connection (4 MB/s each,
// 30 ms round trips), the jump's rate rose with its connections (judged against the baseline),
// or the rule's step back lost rate while each connection's pace held (no baseline) and was
// undone: either way every slot is usable at the end, and the last quarter of the requests had every slot in
// use.
func TestGrowthPerConnectionLinkKeepsEverySlot(t *testing.T) {
	for _, tiny := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			const slots, others = 12, 4
			l := &pacedLink{rtt: 30 * time.Millisecond, perConn: 4e6, size: 256 << 10, tinyFirst: tiny}
			j, p := mirrorSmallFiles(t, l, 600, slots, others)
			t.Logf("tiny first files %v: judgement %+v", tiny, j)
			if p.Limit() != slots || j.Cut || j.StepBack != tiny {
				t.Fatalf("tiny first files %v: limit %d of %d slots, judgement %+v: want every slot (step back: %v, undone)", tiny, p.Limit(), slots, j, tiny)
			}
			most := 0
			for _, n := range l.seen[len(l.seen)*3/4:] {
				most = max(most, n)
			}
			if most < others+slots {
				t.Errorf("the last quarter of the requests came with at most %d in flight, want %d (every slot)", most, others+slots)
			}
		})
	}
}
