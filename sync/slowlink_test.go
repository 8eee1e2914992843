package sync

import (
	"net/http"
	"net/http/httptest"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
)

// The slow-link tests (issue 25) run a whole mirror from an upstream that paces its content the
// way a link would: each response at its own rate (a link limited per connection), or all of
// them through one budget (a link limited in total). They count the content requests in flight
// at once, never the time taken.

// pace is a token bucket kept as a virtual clock; shared by several responses, they split it.
type pace struct {
	mu    gosync.Mutex
	rate  float64 // bytes per second
	clock time.Time
}

// wait pays for n bytes and sleeps until they may be sent.
func (p *pace) wait(n int) {
	p.mu.Lock()
	now := time.Now()
	if p.clock.Before(now) {
		p.clock = now // no burst beyond one piece
	}
	p.clock = p.clock.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	d := p.clock.Sub(now)
	p.mu.Unlock()
	time.Sleep(d)
}

// pacedWriter sends a response in pieces, each paid for with its pace and flushed.
type pacedWriter struct {
	http.ResponseWriter
	pace *pace
}

func (w pacedWriter) Write(b []byte) (int, error) {
	sent := 0
	for len(b) > 0 {
		n := min(len(b), 16<<10)
		w.pace.wait(n)
		m, err := w.ResponseWriter.Write(b[:n])
		sent += m
		if err != nil {
			return sent, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		b = b[n:]
	}
	return sent, nil
}

// contentInFlight serves s's metadata as it is and each content request through serve, told how
// many content requests are in flight with it; most is the most there were at once, seen how
// many were in flight as each came (itself included), in order.
type contentInFlight struct {
	mu        gosync.Mutex
	now, peak int
	arrivals  []int
}

func (c *contentInFlight) handler(s *streamtest.Stream, serve func(w http.ResponseWriter, r *http.Request, inner http.Handler, n int)) http.Handler {
	inner := s.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/streams/") {
			inner.ServeHTTP(w, r)
			return
		}
		c.mu.Lock()
		c.now++
		c.peak = max(c.peak, c.now)
		c.arrivals = append(c.arrivals, c.now)
		n := c.now
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.now--
			c.mu.Unlock()
		}()
		serve(w, r, inner, n)
	})
}

func (c *contentInFlight) most() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

func (c *contentInFlight) seen() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.arrivals...)
}

// slowUpstream serves s with its content paced: perConn gives each response its own rate
// (bytes per second), or else total is one rate all responses share. It returns the server and
// the most content requests it had in flight at once (read once the run is over).
func slowUpstream(t *testing.T, s *streamtest.Stream, perConn, total float64) (*httptest.Server, func() int) {
	srv, c := pacedUpstream(t, s, perConn, total)
	return srv, c.most
}

// slowUpstreamSeen is slowUpstream, and returns how many content requests were in flight as
// each came (itself included), in order (read once the run is over).
func slowUpstreamSeen(t *testing.T, s *streamtest.Stream, perConn, total float64) (*httptest.Server, func() []int) {
	srv, c := pacedUpstream(t, s, perConn, total)
	return srv, c.seen
}

func pacedUpstream(t *testing.T, s *streamtest.Stream, perConn, total float64) (*httptest.Server, *contentInFlight) {
	c := &contentInFlight{}
	shared := &pace{rate: total}
	srv := httptest.NewServer(c.handler(s, func(w http.ResponseWriter, r *http.Request, inner http.Handler, _ int) {
		p := shared
		if perConn > 0 {
			p = &pace{rate: perConn}
		}
		inner.ServeHTTP(pacedWriter{w, p}, r)
	}))
	t.Cleanup(srv.Close)
	return srv, c
}

// slowLinkRun mirrors s from srv into a new directory with opts and checks the mirror.
func slowLinkRun(t *testing.T, s *streamtest.Stream, srv *httptest.Server, tuning Tuning) {
	t.Helper()
	src, err := httpstore.New(srv.Client(), srv.URL, httpstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dst, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Selection: Selection{Verification: Verification{Keyring: testkeys.LoadKeyring(t, testkeys.Keyring)}},
		Tuning:    tuning,
	}
	if _, err := Run(t.Context(), src, dst, opts); err != nil {
		t.Fatal(err)
	}
	checkContent(t, dir, s)
}

// TestSlowLinkSmallFilesUseTheBudget: on a link limited per connection, a mirror of small files
// only (none as large as a range chunk) finds the link slow from the small files themselves and
// runs more than twice Concurrency of them at once on the pool's free slots (issue 25: before,
// only a file of a chunk or more could show the link slow, so small files went Concurrency at
// a time).
func TestSlowLinkSmallFilesUseTheBudget(t *testing.T) {
	s, err := streamtest.Generate(streamtest.Config{
		Releases: []string{"jammy", "noble"}, Arches: []string{"amd64", "arm64"},
		Versions: []string{"20250701", "20250718"}, Kernels: []string{"ga", "hwe"}, Bootloaders: true,
		SquashfsSize: 192 << 10, KernelSize: 96 << 10, InitrdSize: 128 << 10, BootloaderSize: 64 << 10, Seed: 25,
	}, testkeys.Signer(t, testkeys.SigningKey))
	if err != nil {
		t.Fatal(err)
	}
	const concurrency, budget = 2, 10
	srv, most := slowUpstream(t, s, 2e6, 0)
	slowLinkRun(t, s, srv, Tuning{Concurrency: concurrency, RangeConnections: budget})
	if got := most(); got <= 2*concurrency {
		t.Errorf("at most %d content requests in flight, want more than twice Concurrency (%d) on a link limited per connection", got, concurrency)
	} else {
		t.Logf("at most %d content requests in flight (Concurrency %d, range connections %d)", got, concurrency, budget)
	}
}

// manySmallFiles is a stream of about a hundred small files (none as large as a range chunk),
// bootloaders first.
func manySmallFiles(t *testing.T) *streamtest.Stream {
	t.Helper()
	s, err := streamtest.Generate(streamtest.Config{
		Releases: []string{"jammy", "noble"}, Arches: []string{"amd64", "arm64"},
		Versions: []string{"20250701", "20250708", "20250718", "20250725"}, Kernels: []string{"ga", "hwe"}, Bootloaders: true,
		SquashfsSize: 192 << 10, KernelSize: 96 << 10, InitrdSize: 128 << 10, BootloaderSize: 64 << 10, Seed: 27,
	}, testkeys.Signer(t, testkeys.SigningKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSlowLinkLimitedInTotalNotFlooded: on a link limited in total (one rate all responses
// share), where more connections only split the same bytes, the range pool's growth rule cuts
// the borrowed slots once it finds that fewer connections bring as much (issue 25): the last
// third of the content requests came with at most Concurrency and half the range connections
// in flight. Before the rule every free slot was lent for the rest of the run (Concurrency +
// RangeConnections in flight).
func TestSlowLinkLimitedInTotalNotFlooded(t *testing.T) {
	s := manySmallFiles(t)
	const concurrency, budget = 2, 10
	srv, seen := slowUpstreamSeen(t, s, 0, 4e6)
	slowLinkRun(t, s, srv, Tuning{Concurrency: concurrency, RangeConnections: budget})
	reqs := seen()
	most, late := 0, 0
	for i, n := range reqs {
		most = max(most, n)
		if i >= len(reqs)*2/3 {
			late = max(late, n)
		}
	}
	t.Logf("%d content requests, at most %d in flight, %d in the last third (Concurrency %d, range connections %d)", len(reqs), most, late, concurrency, budget)
	if want := concurrency + budget/2; late > want {
		t.Errorf("the last third of the content requests came with up to %d in flight on a link limited in total, want at most %d (Concurrency %d + half the %d range connections)",
			late, want, concurrency, budget)
	}
}

// TestSlowLinkPerConnectionKeepsTheBudget: on a link limited per connection, the growth rule
// leaves every slot usable: the last third of the content requests still reached Concurrency +
// RangeConnections in flight.
func TestSlowLinkPerConnectionKeepsTheBudget(t *testing.T) {
	s := manySmallFiles(t)
	const concurrency, budget = 2, 10
	srv, seen := slowUpstreamSeen(t, s, 1e6, 0)
	slowLinkRun(t, s, srv, Tuning{Concurrency: concurrency, RangeConnections: budget})
	reqs := seen()
	late := 0
	for _, n := range reqs[len(reqs)*2/3:] {
		late = max(late, n)
	}
	t.Logf("%d content requests, %d in flight at most in the last third (Concurrency %d, range connections %d)", len(reqs), late, concurrency, budget)
	if late < concurrency+budget {
		t.Errorf("the last third of the content requests came with at most %d in flight on a link limited per connection, want %d (Concurrency + every range connection)", late, concurrency+budget)
	}
}
