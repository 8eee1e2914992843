package ranged

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	gosync "sync"
	"testing"
	"testing/synctest"
	"time"
)

// memRanges is an in-memory store.RangeOpener. Each body read takes perRead of the (bubble's)
// clock; hold, when set, blocks every open until it is closed or the request's context ends;
// failAt, when ≥ 0, makes every range holding that byte fail to open.
type memRanges struct {
	objs    map[string][]byte
	perRead time.Duration
	// delayAt, when set, is how long a body read starting at byte off of its object takes
	// (instead of perRead).
	delayAt func(off int64) time.Duration
	hold    chan struct{}
	failAt  int64

	mu   gosync.Mutex
	reqs map[string][][2]int64 // key → (offset, length) of each open
}

func newMemRanges(objs map[string][]byte) *memRanges {
	return &memRanges{objs: objs, failAt: -1, reqs: map[string][][2]int64{}}
}

func (m *memRanges) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	m.mu.Lock()
	m.reqs[key] = append(m.reqs[key], [2]int64{off, n})
	m.mu.Unlock()
	if m.hold != nil {
		select {
		case <-m.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	data, ok := m.objs[key]
	if !ok || off < 0 || n <= 0 || off+n > int64(len(data)) {
		return nil, fmt.Errorf("%s: bad range %d+%d", key, off, n)
	}
	if m.failAt >= off && m.failAt < off+n {
		return nil, errors.New("injected failure")
	}
	return &memBody{r: bytes.NewReader(data[off : off+n]), per: m.perRead, delayAt: m.delayAt, off: off, ctx: ctx}, nil
}

func (m *memRanges) requests(key string) [][2]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][2]int64(nil), m.reqs[key]...)
}

type memBody struct {
	r       *bytes.Reader
	per     time.Duration
	delayAt func(off int64) time.Duration
	off     int64 // of the next byte read, in the object
	ctx     context.Context
}

func (b *memBody) Read(p []byte) (int, error) {
	d := b.per
	if b.delayAt != nil {
		d = b.delayAt(b.off)
	}
	if d > 0 {
		select {
		case <-time.After(d):
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
	}
	n, err := b.r.Read(p)
	b.off += int64(n)
	return n, err
}

func (b *memBody) Close() error { return nil }

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// readAllVarying reads r to its end in reads of varying sizes (1 byte to 3 chunks).
func readAllVarying(r io.Reader, seed uint64, chunk int64) ([]byte, error) {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []byte
	for {
		p := make([]byte, 1+rng.IntN(int(3*chunk)))
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestPoolBytes: many files read at once through one pool come out byte for byte, for many
// sizes, chunk sizes, slot counts, per-file caps and files in flight, with and without the rate
// gate; afterwards every slot is free and no goroutine is left (synctest fails the test if one
// is blocked for good).
func TestPoolBytes(t *testing.T) {
	for _, chunk := range []int64{1, 7, 64} {
		for _, slots := range []int{1, 2, 3, 8} {
			for _, files := range []int{1, 3, 5} {
				for _, maxStreams := range []int{0, 1, 2} {
					for _, gate := range []float64{0, 1e9} {
						name := fmt.Sprintf("chunk=%d/slots=%d/files=%d/max=%d/gate=%g", chunk, slots, files, maxStreams, gate)
						t.Run(name, func(t *testing.T) {
							synctest.Test(t, func(t *testing.T) {
								testPoolBytes(t, chunk, slots, files, maxStreams, gate)
							})
						})
					}
				}
			}
		}
	}
}

func testPoolBytes(t *testing.T, chunk int64, slots, files, maxStreams int, gate float64) {
	sizes := []int64{1, chunk - 1, chunk, chunk + 1, 2*chunk + 1, 9*chunk + 3, 40 * chunk}
	objs := map[string][]byte{}
	var keys []string
	for i := range files {
		size := sizes[i%len(sizes)] + int64(i/len(sizes))
		if size <= 0 {
			size = 1
		}
		key := fmt.Sprintf("f%d", i)
		objs[key] = randomBytes(uint64(i)+uint64(chunk)*131, int(size))
		keys = append(keys, key)
	}
	src := newMemRanges(objs)
	src.perRead = time.Millisecond // a slow link: with the gate on, files want streams
	p := NewPool(slots, chunk, PoolOptions{MaxStreams: maxStreams, FastEnough: gate})
	var wg gosync.WaitGroup
	for i, key := range keys {
		wg.Go(func() {
			r := p.Open(context.Background(), src, key, int64(len(objs[key])), Options{})
			got, err := readAllVarying(r, uint64(i), chunk)
			r.Close()
			if err != nil {
				t.Errorf("%s: %v", key, err)
				return
			}
			if !bytes.Equal(got, objs[key]) {
				t.Errorf("%s: %d bytes differ from the object's %d", key, len(got), len(objs[key]))
			}
		})
	}
	wg.Wait()
	synctest.Wait()
	if n := p.Free(); n != slots {
		t.Errorf("%d of %d slots free after every reader closed", n, slots)
	}
	checkServedOnce(t, src, objs)
}

// TestPoolFreedSlotTaken: a slot freed by one file goes to a file that was waiting on its single
// connection: at its end (its worker finds nothing more to fetch) and when it is closed mid-way.
// Deterministic: synctest.Wait lets every goroutine settle before each check.
func TestPoolFreedSlotTaken(t *testing.T) {
	for _, how := range []string{"end", "close"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const chunk = 10
				objs := map[string][]byte{"a": randomBytes(1, 100), "b": randomBytes(2, 100)}
				src := newMemRanges(objs)
				p := NewPool(1, chunk, PoolOptions{})
				ctx := context.Background()
				a := p.Open(ctx, src, "a", 100, Options{}).(*Reader)
				b := p.Open(ctx, src, "b", 100, Options{}).(*Reader)
				synctest.Wait()
				if a.Streams() != 1 || b.Streams() != 0 {
					t.Fatalf("streams a=%d b=%d, want 1 and 0 (a opened first, one slot)", a.Streams(), b.Streams())
				}
				if how == "end" {
					got, err := io.ReadAll(a)
					if err != nil || !bytes.Equal(got, objs["a"]) {
						t.Fatalf("a: %d bytes, %v", len(got), err)
					}
				} else {
					if _, err := io.ReadFull(a, make([]byte, 35)); err != nil {
						t.Fatal(err)
					}
					a.Close()
				}
				synctest.Wait()
				if a.Streams() != 0 || b.Streams() != 1 {
					t.Fatalf("after a's slot was freed: streams a=%d b=%d, want 0 and 1", a.Streams(), b.Streams())
				}
				got, err := io.ReadAll(b)
				if err != nil || !bytes.Equal(got, objs["b"]) {
					t.Fatalf("b: %d bytes, %v", len(got), err)
				}
				a.Close()
				b.Close()
				if n := p.Free(); n != 1 {
					t.Errorf("%d slots free at the end, want 1", n)
				}
			})
		})
	}
}

// TestPoolFairShare: freed slots go to the files on the fewest streams, then the one with the
// most bytes left, never all to one file while another is on its single connection.
func TestPoolFairShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const chunk = 10
		objs := map[string][]byte{"a": randomBytes(1, 200), "b": randomBytes(2, 100), "c": randomBytes(3, 150)}
		src := newMemRanges(objs)
		src.hold = make(chan struct{}) // nothing arrives: the streams stay where they are given
		p := NewPool(3, chunk, PoolOptions{})
		ctx := context.Background()
		a := p.Open(ctx, src, "a", 200, Options{}).(*Reader)
		b := p.Open(ctx, src, "b", 100, Options{}).(*Reader)
		c := p.Open(ctx, src, "c", 150, Options{}).(*Reader)
		synctest.Wait()
		if a.Streams() != 3 || b.Streams() != 0 || c.Streams() != 0 {
			t.Fatalf("streams %d %d %d, want 3 0 0 (a opened first and took them all)", a.Streams(), b.Streams(), c.Streams())
		}
		a.Close()
		synctest.Wait()
		// Three slots free: c (more bytes left) first, then b, then c or b on one stream each:
		// the larger one again.
		if b.Streams() != 1 || c.Streams() != 2 {
			t.Fatalf("after a closed: streams b=%d c=%d, want 1 and 2", b.Streams(), c.Streams())
		}
		close(src.hold)
		for _, x := range []struct {
			r   *Reader
			key string
		}{{b, "b"}, {c, "c"}} {
			got, err := io.ReadAll(x.r)
			if err != nil || !bytes.Equal(got, objs[x.key]) {
				t.Fatalf("%s: %d bytes, %v", x.key, len(got), err)
			}
			x.r.Close()
		}
		if n := p.Free(); n != 3 {
			t.Errorf("%d slots free at the end, want 3", n)
		}
	})
}

// TestPoolCancel: cancelling the caller's context mid-file fails the read naming the key, and
// Close gives every slot back and stops every worker (synctest: none is left blocked).
func TestPoolCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const chunk = 10
		objs := map[string][]byte{"a": randomBytes(1, 500), "b": randomBytes(2, 500)}
		src := newMemRanges(objs)
		src.perRead = time.Second
		p := NewPool(4, chunk, PoolOptions{MaxStreams: 2})
		ctx, cancel := context.WithCancel(context.Background())
		a := p.Open(ctx, src, "a", 500, Options{})
		b := p.Open(context.Background(), src, "b", 500, Options{})
		if _, err := io.ReadFull(a, make([]byte, 55)); err != nil {
			t.Fatal(err)
		}
		cancel()
		_, err := io.ReadAll(a)
		if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "a") {
			t.Fatalf("read after cancel: %v, want a context.Canceled naming a", err)
		}
		a.Close()
		synctest.Wait()
		if n := b.(*Reader).Streams(); n != 2 {
			t.Errorf("b has %d streams, want 2", n)
		}
		got, err := io.ReadAll(b)
		if err != nil || !bytes.Equal(got, objs["b"]) {
			t.Fatalf("b: %d bytes, %v", len(got), err)
		}
		b.Close()
		if n := p.Free(); n != 4 {
			t.Errorf("%d slots free at the end, want 4", n)
		}
	})
}

// TestPoolChunkFails: a range that fails for good fails the read with the key and the byte
// range, on a worker and on the file's own connection alike; the slots come back.
func TestPoolChunkFails(t *testing.T) {
	for _, slots := range []int{0, 2} {
		t.Run(fmt.Sprintf("slots=%d", slots), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const chunk = 10
				objs := map[string][]byte{"img": randomBytes(1, 300)}
				src := newMemRanges(objs)
				src.failAt = 123
				p := NewPool(slots, chunk, PoolOptions{})
				r := p.Open(context.Background(), src, "img", 300, Options{})
				got, err := io.ReadAll(r)
				if err == nil || !strings.Contains(err.Error(), "img") || !strings.Contains(err.Error(), "injected failure") {
					t.Fatalf("read: %v, want the injected failure naming img", err)
				}
				if len(got) > 120 || !bytes.Equal(got, objs["img"][:len(got)]) {
					t.Errorf("got %d bytes before the failure, not a prefix of the object up to byte 120", len(got))
				}
				r.Close()
				if n := p.Free(); n != slots {
					t.Errorf("%d of %d slots free", n, slots)
				}
			})
		})
	}
}

// TestPoolRateGate: a file whose own connection brings chunks faster than FastEnough gets no
// range streams (only its own connection's windows, each twice the one before); a slower one
// does once its first chunk is in.
func TestPoolRateGate(t *testing.T) {
	for _, c := range []struct {
		perRead time.Duration
		ranged  bool
	}{{0, false}, {time.Second, true}} {
		t.Run(fmt.Sprint(c.perRead), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const chunk = 10
				objs := map[string][]byte{"img": randomBytes(1, 300)}
				src := newMemRanges(objs)
				src.perRead = c.perRead
				p := NewPool(4, chunk, PoolOptions{FastEnough: 100})
				r := p.Open(context.Background(), src, "img", 300, Options{})
				got, err := readAllVarying(r, 1, chunk)
				r.Close()
				if err != nil || !bytes.Equal(got, objs["img"]) {
					t.Fatalf("img: %d bytes, %v", len(got), err)
				}
				reqs := src.requests("img")
				// On its own connection only: bounded windows, doubling from one chunk.
				if want := [][2]int64{{0, 10}, {10, 20}, {30, 40}, {70, 80}, {150, 150}}; !c.ranged && fmt.Sprint(reqs) != fmt.Sprint(want) {
					t.Errorf("fast connection: requests %v, want its own connection's windows %v", reqs, want)
				}
				if c.ranged && len(reqs) < 3 {
					t.Errorf("slow connection: %d requests, want range streams added", len(reqs))
				}
			})
		})
	}
}

// TestPoolRateGateRelative: the rate gate judges the connection, not the caller. A caller that
// takes its time between reads of a fast connection (hashing and writing on a loaded machine)
// makes every chunk late, but its reads never wait: the file stays on its own connection. One
// late chunk among fast ones is not enough either: its first probe period is one strike of
// slowStrikes, and the next chunk, in time, clears it; periods late while the caller waits in
// Read, in a row, are (TestPoolRateGate).
func TestPoolRateGateRelative(t *testing.T) {
	const chunk = 10
	windows := [][2]int64{{0, 10}, {10, 20}, {30, 40}, {70, 80}, {150, 150}} // doubling, no ranges
	for _, c := range []struct {
		name    string
		delayAt func(off int64) time.Duration
		pause   time.Duration // the caller's, after each read
	}{
		{"slow caller", nil, time.Second},
		{"one late chunk", func(off int64) time.Duration {
			if off == chunk { // 1.5 probe periods (chunk/FastEnough)
				return 150 * time.Millisecond
			}
			return 0
		}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				objs := map[string][]byte{"img": randomBytes(1, 300)}
				src := newMemRanges(objs)
				src.delayAt = c.delayAt
				p := NewPool(4, chunk, PoolOptions{FastEnough: 100})
				r := p.Open(context.Background(), src, "img", 300, Options{})
				var got []byte
				buf := make([]byte, 4)
				for {
					n, err := r.Read(buf)
					got = append(got, buf[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					time.Sleep(c.pause)
				}
				r.Close()
				if !bytes.Equal(got, objs["img"]) {
					t.Fatalf("img: %d bytes differ", len(got))
				}
				if reqs := src.requests("img"); fmt.Sprint(reqs) != fmt.Sprint(windows) {
					t.Errorf("requests %v, want its own connection's windows %v (no range streams)", reqs, windows)
				}
			})
		})
	}
}

// TestPoolSlowWithinAChunk: a connection that keeps its caller waiting is found slow after
// slowStrikes probe periods (chunk/FastEnough each), while its first chunk is still coming, not
// after that chunk (on a link of 2 MB/s per connection a chunk of 2 MiB takes a second).
func TestPoolSlowWithinAChunk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const chunk = 10
		objs := map[string][]byte{"img": randomBytes(1, 300)}
		src := newMemRanges(objs)
		src.perRead = time.Second                            // the first chunk takes 10 s in reads of one byte
		p := NewPool(4, chunk, PoolOptions{FastEnough: 100}) // a probe period of 0.1 s
		r := p.Open(context.Background(), src, "img", 300, Options{}).(*Reader)
		go func() {
			io.ReadFull(r, make([]byte, 1))
			io.ReadAll(iotestOneByte{r})
		}()
		time.Sleep(time.Duration(slowStrikes)*100*time.Millisecond + 50*time.Millisecond)
		synctest.Wait()
		if n := r.Streams(); n == 0 {
			t.Errorf("no range streams %d probe periods into the first chunk", slowStrikes)
		}
		r.Close()
	})
}

// iotestOneByte reads one byte at a time.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 1)]) }

// TestPoolRebalance: a file that wants streams only once another holds them all gets its share
// as the other's workers finish their chunks: a worker between two chunks gives its slot back
// when a wanting file is on two streams fewer.
func TestPoolRebalance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const chunk = 10
		objs := map[string][]byte{"a": randomBytes(1, 400), "b": randomBytes(2, 400)}
		src := newMemRanges(objs)
		p := NewPool(4, chunk, PoolOptions{})
		ctx := context.Background()
		a := p.Open(ctx, src, "a", 400, Options{}).(*Reader)
		b := p.Open(ctx, src, "b", 400, Options{}).(*Reader)
		synctest.Wait()
		if a.Streams() != 4 || b.Streams() != 0 {
			t.Fatalf("streams a=%d b=%d, want 4 and 0", a.Streams(), b.Streams())
		}
		// Each chunk a's caller reads frees a worker to move on: the first two go to b.
		for want := 1; want <= 2; want++ {
			if _, err := io.ReadFull(a, make([]byte, chunk)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if a.Streams() != 4-want || b.Streams() != want {
				t.Fatalf("after %d chunks of a: streams a=%d b=%d, want %d and %d", want, a.Streams(), b.Streams(), 4-want, want)
			}
		}
		if _, err := io.ReadFull(a, make([]byte, chunk)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if a.Streams() != 2 || b.Streams() != 2 {
			t.Fatalf("balanced: streams a=%d b=%d, want 2 and 2", a.Streams(), b.Streams())
		}
		for _, x := range []struct {
			r    *Reader
			want []byte
		}{{a, objs["a"][3*chunk:]}, {b, objs["b"]}} {
			got, err := io.ReadAll(x.r)
			if err != nil || !bytes.Equal(got, x.want) {
				t.Fatalf("%s: %d bytes, %v", x.r.key, len(got), err)
			}
			x.r.Close()
		}
		if n := p.Free(); n != 4 {
			t.Errorf("%d slots free at the end, want 4", n)
		}
	})
}

// TestPoolBorrow: a slot is lent (Borrow) only once the link was found slow, only while no
// file wants it, and a slot a file frees goes to a file that wants streams before a borrower.
func TestPoolBorrow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool(1, 10, PoolOptions{FastEnough: 1e9})
		got := make(chan func(), 1)
		go func() {
			giveBack, ok := p.Borrow(context.Background())
			if ok {
				got <- giveBack
			}
		}()
		synctest.Wait()
		if len(got) != 0 {
			t.Fatal("a slot was lent before the link was found slow")
		}
		p.MarkSlow()
		synctest.Wait()
		if len(got) != 1 || p.Free() != 0 {
			t.Fatalf("after MarkSlow: lent %d, %d free", len(got), p.Free())
		}
		(<-got)()
		if p.Free() != 1 {
			t.Fatalf("%d free after the slot was given back", p.Free())
		}
	})
	synctest.Test(t, func(t *testing.T) {
		const chunk = 10
		objs := map[string][]byte{"a": randomBytes(1, 100), "b": randomBytes(2, 100)}
		src := newMemRanges(objs)
		p := NewPool(1, chunk, PoolOptions{}) // no gate: every file wants streams
		ctx, cancel := context.WithCancel(context.Background())
		a := p.Open(ctx, src, "a", 100, Options{}).(*Reader)
		b := p.Open(ctx, src, "b", 100, Options{}).(*Reader)
		lent := make(chan func(), 1)
		go func() {
			if giveBack, ok := p.Borrow(ctx); ok {
				lent <- giveBack
			}
		}()
		synctest.Wait()
		if _, err := io.ReadAll(a); err != nil {
			t.Fatal(err)
		}
		a.Close()
		synctest.Wait()
		if b.Streams() != 1 || len(lent) != 0 {
			t.Fatalf("a's slot: b has %d streams, %d lent; want it with b", b.Streams(), len(lent))
		}
		if _, err := io.ReadAll(b); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if len(lent) != 1 {
			t.Fatal("the slot no file wants was not lent")
		}
		(<-lent)()
		b.Close()
		cancel()
		if p.Free() != 1 {
			t.Errorf("%d free at the end", p.Free())
		}
	})
}

// checkServedOnce fails the test unless the source was asked for every byte of each object
// exactly once: the ranges opened for a key are disjoint and cover it, so the bytes the source
// serves (a server sends the whole of each range it is asked for, whatever the client does with
// them) equal the object's size.
func checkServedOnce(t *testing.T, src *memRanges, objs map[string][]byte) {
	t.Helper()
	for key, data := range objs {
		seen := make([]int, len(data))
		var served int64
		for _, rq := range src.requests(key) {
			served += rq[1]
			for b := rq[0]; b < rq[0]+rq[1] && b < int64(len(data)); b++ {
				seen[b]++
			}
		}
		if served != int64(len(data)) {
			t.Errorf("%s: the source served %d bytes for an object of %d (requests %v)", key, served, len(data), src.requests(key))
			continue
		}
		for b, n := range seen {
			if n != 1 {
				t.Errorf("%s: byte %d asked for %d times", key, b, n)
				break
			}
		}
	}
}

// TestPoolServesEachByteOnce: whatever the shape (sizes, chunk sizes, slots, per-file caps, files
// in flight) and whether the link is fast, slow from the start or turns slow part-way through a
// file, the source is asked for each byte of each object exactly once: no request reaches past
// what is read (a cut open-ended request would have served what the server had already sent).
func TestPoolServesEachByteOnce(t *testing.T) {
	links := []struct {
		name    string
		perRead time.Duration
		gate    float64 // FastEnough in bytes per second, for chunks of 64 bytes
	}{
		{"fast", 0, 1e3},                              // reads take no time: never slow
		{"slow-from-start", time.Millisecond, 0},      // no gate: every file wants streams
		{"slow", time.Millisecond, 1e9},               // the first chunk is already too slow
		{"turns-slow", time.Millisecond, 64 / 0.0025}, // a chunk read in 3 or more reads is slow
	}
	for _, link := range links {
		for _, chunk := range []int64{1, 7, 64} {
			for _, slots := range []int{1, 2, 5, 15} {
				for _, files := range []int{1, 4, 9} {
					for _, maxStreams := range []int{0, 1, 5} {
						name := fmt.Sprintf("%s/chunk=%d/slots=%d/files=%d/max=%d", link.name, chunk, slots, files, maxStreams)
						t.Run(name, func(t *testing.T) {
							synctest.Test(t, func(t *testing.T) {
								gate := link.gate * float64(chunk) / 64
								sizes := []int64{1, chunk, chunk + 1, 3*chunk - 1, 17*chunk + 5, 64 * chunk, 200*chunk + 3}
								objs := map[string][]byte{}
								for i := range files {
									objs[fmt.Sprintf("f%d", i)] = randomBytes(uint64(i)+99, int(sizes[i%len(sizes)]+int64(i/len(sizes))))
								}
								src := newMemRanges(objs)
								src.perRead = link.perRead
								p := NewPool(slots, chunk, PoolOptions{MaxStreams: maxStreams, FastEnough: gate})
								var wg gosync.WaitGroup
								i := 0
								for key, data := range objs {
									seed := uint64(i)
									i++
									wg.Go(func() {
										r := p.Open(context.Background(), src, key, int64(len(data)), Options{})
										defer r.Close()
										got, err := readAllVarying(r, seed, chunk)
										if err != nil || !bytes.Equal(got, data) {
											t.Errorf("%s: %d of %d bytes, %v", key, len(got), len(data), err)
										}
									})
								}
								wg.Wait()
								synctest.Wait()
								checkServedOnce(t, src, objs)
							})
						})
					}
				}
			}
		}
	}
}
