// Command linkemu is a loopback TCP proxy that emulates a slower, farther link, for benchmarks:
//
//	go run ./scripts/linkemu -listen 127.0.0.1:8081 -to 127.0.0.1:8080 -rate 20MB -latency 30ms
//
// What it models, per accepted connection:
//
//   - Bandwidth: each direction of each connection has its own token bucket of -rate bytes per
//     second (burst -burst bytes). Connections do not share that budget: the limit is per
//     connection, like a path whose bottleneck is per-flow (a server's per-connection cap, or
//     TCP over a long path). With -total-rate, every connection's bytes in one direction also
//     pass one token bucket shared by all of them: a shared pipe (an access line), where more
//     connections only split the same bytes. Either may be 0 (no such limit).
//   - Latency: -latency is the added round-trip time. Every chunk read from one side is
//     delivered to the other side latency/2 after it was read (a one-way delay), so a request
//     and its response cost one extra -latency. Connection setup costs one more round trip:
//     the upstream connection is dialled -latency after the client's connection is accepted,
//     as a TCP handshake would delay the client's first request.
//   - Back-pressure: at most -window bytes per direction are in flight inside the proxy; beyond
//     that it stops reading, so the sender sees TCP flow control as on a real path.
//
// It does not model loss, jitter or reordering. Both addresses must be loopback addresses.
// It prints "linkemu: listening on ADDR" once ready and runs until interrupted.
//
// With -stats FILE it appends, every -stats-interval during which any byte crossed the link,
// one line of tab-separated fields: the interval's end (Unix seconds), the connections open,
// the connections that sent bytes towards the server (-to) in it, those that sent bytes back,
// and the bytes each way. A benchmark reads from it how many requests a client really had in
// flight through the link at once (an upload's parts, a download's ranges).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "linkemu:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("linkemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on")
	to := fs.String("to", "", "loopback address to forward to (required)")
	rate := fs.String("rate", "20MB", "bytes per second per connection and direction (K/M/G = 1000^n, Ki/Mi/Gi = 1024^n; 0: unlimited)")
	total := fs.String("total-rate", "0", "bytes per second per direction shared by all connections (0: no shared limit)")
	burst := fs.String("burst", "64KiB", "token bucket size in bytes")
	latency := fs.Duration("latency", 30*time.Millisecond, "added round-trip time (each direction is delayed by half)")
	window := fs.String("window", "4MiB", "bytes in flight inside the proxy per connection and direction")
	statsFile := fs.String("stats", "", "append per-interval connection counts and bytes to this file (see the package comment)")
	statsEvery := fs.Duration("stats-interval", 250*time.Millisecond, "the interval of -stats")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("-to is required and no arguments are taken")
	}
	var l Link
	var err error
	if l.Rate, err = parseBytes(*rate); err != nil {
		return fmt.Errorf("-rate: %w", err)
	}
	if l.Total, err = parseBytes(*total); err != nil {
		return fmt.Errorf("-total-rate: %w", err)
	}
	if l.Burst, err = parseBytes(*burst); err != nil {
		return fmt.Errorf("-burst: %w", err)
	}
	if l.Window, err = parseBytes(*window); err != nil {
		return fmt.Errorf("-window: %w", err)
	}
	if *latency < 0 {
		return fmt.Errorf("-latency: negative duration %v", *latency)
	}
	l.Latency = *latency
	for _, a := range []string{*listen, *to} {
		if err := checkLoopback(a); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *statsFile != "" {
		f, err := os.OpenFile(*statsFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			ln.Close()
			return err
		}
		defer f.Close()
		if *statsEvery <= 0 {
			ln.Close()
			return fmt.Errorf("-stats-interval: %v is not positive", *statsEvery)
		}
		l.Stats = &Stats{}
		go l.Stats.Log(ctx, f, *statsEvery)
	}
	fmt.Fprintf(stdout, "linkemu: listening on %s, forwarding to %s (%s/s per connection and direction, %s/s in all per direction, +%v round trip)\n",
		ln.Addr(), *to, *rate, *total, l.Latency)
	return l.Serve(ctx, ln, *to)
}

// checkLoopback refuses an address whose host is not a loopback IP (or "localhost").
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: only loopback addresses are allowed", addr)
	}
	return nil
}

// parseBytes parses "20MB", "20M", "64KiB", "1.5G" or a plain number of bytes.
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KI", 1 << 10}, {"MI", 1 << 20}, {"GI", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1}} {
		if strings.HasSuffix(strings.ToUpper(t), u.suffix) {
			t, mult = t[:len(t)-len(u.suffix)], u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad byte count %q", s)
	}
	return int64(f * mult), nil
}

// Link is the emulated link's parameters.
type Link struct {
	Rate    int64         // bytes per second per connection and direction; 0: unlimited
	Total   int64         // bytes per second per direction, all connections together; 0: unlimited
	Burst   int64         // token bucket size in bytes (0: 64 KiB)
	Latency time.Duration // added round-trip time
	Window  int64         // bytes in flight inside the proxy per direction (0: 4 MiB)
	Stats   *Stats        // counts what crosses the link (nil: nothing counted)
}

// Stats counts the bytes each connection of a Link moves in each direction.
type Stats struct {
	mu    sync.Mutex
	conns map[*connStats]bool
}

// connStats is what one connection moved: towards the server (up) and back (down).
type connStats struct {
	up, down         atomic.Int64
	lastUp, lastDown int64 // at the last sample (Sample's)
}

// Sample is one interval's counts: the connections open, those that moved bytes towards the
// server and back in the interval, and the bytes.
type Sample struct {
	Open, Up, Down   int
	UpBytes, DnBytes int64
}

func (s *Stats) add() *connStats {
	c := &connStats{}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[*connStats]bool{}
	}
	s.conns[c] = true
	return c
}

// remove forgets c once its last bytes were sampled (Sample counts a closed connection once more).
func (s *Stats) remove(c *connStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[c] = false
}

// Sample returns what moved since the previous call.
func (s *Stats) Sample() Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var smp Sample
	for c, open := range s.conns {
		up, down := c.up.Load(), c.down.Load()
		if open {
			smp.Open++
		} else {
			delete(s.conns, c)
		}
		if d := up - c.lastUp; d > 0 {
			smp.Up++
			smp.UpBytes += d
		}
		if d := down - c.lastDown; d > 0 {
			smp.Down++
			smp.DnBytes += d
		}
		c.lastUp, c.lastDown = up, down
	}
	return smp
}

// Log writes a line to w for every interval in which bytes moved, until ctx ends.
func (s *Stats) Log(ctx context.Context, w io.Writer, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if smp := s.Sample(); smp.UpBytes > 0 || smp.DnBytes > 0 {
				fmt.Fprintf(w, "%.3f\t%d\t%d\t%d\t%d\t%d\n", float64(now.UnixMilli())/1e3, smp.Open, smp.Up, smp.Down, smp.UpBytes, smp.DnBytes)
			}
		}
	}
}

const chunkSize = 32 << 10

// Serve accepts connections on ln and forwards each to the address to through the emulated
// link until ctx is cancelled; it then closes ln and every open connection and returns nil.
func (l Link) Serve(ctx context.Context, ln net.Listener, to string) error {
	// The shared pipe: one bucket per direction for all connections (toUpstream, toClient).
	shared := [2]*sharedBucket{{b: newBucket(l.Total, l.Burst)}, {b: newBucket(l.Total, l.Burst)}}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		wg.Wait()
	}()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.handle(ctx, c, to, shared)
		}()
	}
}

// handle forwards one client connection.
func (l Link) handle(ctx context.Context, client net.Conn, to string, shared [2]*sharedBucket) {
	defer client.Close()
	// The handshake's round trip.
	select {
	case <-time.After(l.Latency):
	case <-ctx.Done():
		return
	}
	var d net.Dialer
	upstream, err := d.DialContext(ctx, "tcp", to)
	if err != nil {
		return // the client sees its connection closed, as with a refused upstream
	}
	defer upstream.Close()
	stop := context.AfterFunc(ctx, func() {
		client.Close()
		upstream.Close()
	})
	defer stop()
	var up, down *atomic.Int64
	if l.Stats != nil {
		c := l.Stats.add()
		defer l.Stats.remove(c)
		up, down = &c.up, &c.down
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pipe(upstream, client, shared[0], up) }()
	go func() { defer wg.Done(); l.pipe(client, upstream, shared[1], down) }()
	wg.Wait()
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst through the delay line, the connection's token bucket and the
// direction's shared one, then half-closes dst. On an error in either direction both
// connections are closed. Bytes written are added to count (nil: not counted).
func (l Link) pipe(dst, src net.Conn, shared *sharedBucket, count *atomic.Int64) {
	window := l.Window
	if window <= 0 {
		window = 4 << 20
	}
	ch := make(chan chunk, max(4, window/chunkSize))
	oneWay := l.Latency / 2
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, chunkSize)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{buf[:n], time.Now().Add(oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	bucket := newBucket(l.Rate, l.Burst)
	failed := false
	for c := range ch {
		if failed {
			continue // drain so that the reader goroutine ends
		}
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		bucket.wait(len(c.data))
		shared.wait(len(c.data))
		n, err := dst.Write(c.data)
		if count != nil {
			count.Add(int64(n))
		}
		if err != nil {
			failed = true
			src.Close()
			dst.Close()
		}
	}
	if !failed {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
}

// bucket is a token bucket kept as a virtual clock: the time at which the bytes sent so far
// have been paid for. Idle time earns tokens up to the burst (the clock never lags now by more
// than burst/rate); a send of n bytes advances the clock by n/rate and waits until it.
type bucket struct {
	rate  float64 // bytes per second; 0: unlimited
	slack time.Duration
	clock time.Time
}

func newBucket(rate, burst int64) *bucket {
	if burst <= 0 {
		burst = 64 << 10
	}
	b := &bucket{rate: float64(rate)}
	if rate > 0 {
		b.slack = time.Duration(float64(burst) / float64(rate) * float64(time.Second))
	}
	return b
}

func (b *bucket) wait(n int) {
	if d := b.take(n); d > 0 {
		time.Sleep(d)
	}
}

// take pays for n bytes and returns how long the sender must wait before sending them.
func (b *bucket) take(n int) time.Duration {
	if b.rate <= 0 {
		return 0
	}
	now := time.Now()
	if earliest := now.Add(-b.slack); b.clock.Before(earliest) {
		b.clock = earliest // unused tokens accumulate up to the burst, no further
	}
	b.clock = b.clock.Add(time.Duration(float64(n) / b.rate * float64(time.Second)))
	return b.clock.Sub(now)
}

// sharedBucket is one bucket paid by several connections' senders: each takes its turn in the
// order it asked, and waits outside the lock.
type sharedBucket struct {
	mu sync.Mutex
	b  *bucket
}

func (s *sharedBucket) wait(n int) {
	s.mu.Lock()
	d := s.b.take(n)
	s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}
