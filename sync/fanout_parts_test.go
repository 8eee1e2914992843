package sync_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	gosync "sync"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// partGate is a reverse proxy in front of an S3 server that counts the part uploads (UploadPart
// requests) in flight through it at once. It holds each part back until want of them are in
// flight together (then lets every part through, from then on) or, at the latest, for hold: so
// the most it counts is what the client is able to keep in flight, not what the server's speed
// happened to let overlap.
type partGate struct {
	next http.Handler
	want int
	hold time.Duration

	mu       gosync.Mutex
	inFlight int
	most     int
	open     chan struct{} // closed once want parts were in flight at once
	opened   bool
}

func newPartGate(t *testing.T, srv *testserver.Server, want int, hold time.Duration) (*partGate, string) {
	t.Helper()
	u, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	g := &partGate{next: httputil.NewSingleHostReverseProxy(u), want: want, hold: hold, open: make(chan struct{})}
	proxy := httptest.NewServer(g)
	t.Cleanup(proxy.Close)
	return g, proxy.URL
}

func (g *partGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut || !r.URL.Query().Has("partNumber") {
		g.next.ServeHTTP(w, r)
		return
	}
	g.mu.Lock()
	g.inFlight++
	g.most = max(g.most, g.inFlight)
	if g.inFlight == g.want && !g.opened {
		close(g.open)
		g.opened = true
	}
	open := g.open
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	timer := time.NewTimer(g.hold)
	defer timer.Stop()
	select {
	case <-open:
	case <-timer.C:
	case <-r.Context().Done():
		return
	}
	g.next.ServeHTTP(w, r)
}

// mostInFlight is the most part uploads that were in flight through g at once.
func (g *partGate) mostInFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.most
}

// TestFanOutKeepsPartsInFlight: a fan-out keeps as many part uploads in flight in each S3 target
// as a run into that target alone does: Concurrency files at once, each with a part on its way.
// On links that limit each connection (remote sites), that is what sets a site's pace. Here the
// files are of two whole 5 MiB parts, four at once, and the fan-out buffer is four parts (the
// defaults' proportions: 32 MiB for four files of 8 MiB parts). Each file of the fan-out
// reserves one part plus two chunks before it opens the source: before the fix only three such
// reservations fitted in the buffer, the fourth file waited, and what the three borrowed of the
// rest was less than a part, so it sent nothing: each site had three parts in flight instead of
// four (scripts/bench's ssmirror-sites-link over 3 MB/s per connection: 3.15 uploads busy on
// average against 4.0 alone, 1.27 times the slowest site's wall time).
func TestFanOutKeepsPartsInFlight(t *testing.T) {
	defer sync.SetFanOutPatience(time.Minute)() // the gate holds parts back: nobody is given up on
	const (
		concurrency = 4
		partSize    = s3store.MinPartSize
		// hold bounds how long a part is held when fewer than concurrency come (the code before
		// the fix): it only sets how long that takes, and stays well below the patience.
		hold = 5 * time.Second
	)
	cfg := streamtest.Config{
		Releases: []string{"noble"}, Arches: []string{"amd64", "arm64"}, Versions: []string{"20250701"},
		Kernels: []string{"ga"}, SquashfsSize: 2 * partSize, KernelSize: 2 * partSize, InitrdSize: 2 * partSize,
		Seed: 21,
	}
	up, _ := newCountedUpstream(t, cfg)
	want := selected(t, up.stream)
	if len(want) < concurrency {
		t.Fatalf("the stream has %d content files, want at least %d", len(want), concurrency)
	}
	srv := testserver.Shared(t, testserver.KindMinIO)
	s3opts := s3store.Options{PartSize: partSize, PartConcurrency: concurrency, BufferBudget: concurrency * partSize}
	gated := func() (*targettest.Target, *partGate) {
		g, endpoint := newPartGate(t, srv, concurrency, hold)
		o := s3opts
		o.Endpoint = endpoint
		return targettest.New(t, targettest.MinIO, targettest.Options{Prefix: "maas/stable/", S3: o}), g
	}
	opts := sync.Options{
		Selection: sync.Selection{Verification: sync.Verification{Keyring: up.keyring}},
		Tuning:    sync.Tuning{Concurrency: concurrency, FanOutBuffer: concurrency * partSize},
	}

	// One target alone: its part buffers (four parts) let the four files each send a part at once.
	alone, aloneGate := gated()
	if _, err := sync.Run(t.Context(), up.src, alone.Store, opts); err != nil {
		t.Fatal(err)
	}
	checkTarget(t, up, alone, want)
	if n := aloneGate.mostInFlight(); n < concurrency {
		t.Fatalf("a run into one target had at most %d parts in flight, want %d: the gate does not measure what it should", n, concurrency)
	}

	// A fan-out into two such targets and a directory: as many in each S3 target.
	a, aGate := gated()
	b, bGate := gated()
	dir := targettest.New(t, targettest.Directory, targettest.Options{})
	tgs := []*targettest.Target{a, b, dir}
	fr, err := sync.RunTargets(t.Context(), up.src, stores(tgs), opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, tg := range tgs {
		if res := fr.Targets[i]; res.Err != nil || res.Report == nil || res.Report.Fetched != len(want) {
			t.Fatalf("%s: %v (report %+v)", res.Target, res.Err, res.Report)
		}
		checkTarget(t, up, tg, want)
	}
	for _, c := range []struct {
		tg *targettest.Target
		g  *partGate
	}{{a, aGate}, {b, bGate}} {
		if n := c.g.mostInFlight(); n < concurrency {
			t.Errorf("%s: the fan-out had at most %d parts in flight there, want %d as alone", store.Describe(c.tg.Store), n, concurrency)
		}
	}
}

// TestFanOutOneLegTakesNoPartBuffers: in a fan-out, a file only one S3 target still needs (the
// directory beside it holds it already) streams through the tee like the others, so the S3
// target sends its parts from the tee's chunks and never takes a part buffer of its own; the
// transfer stage's memory (OnTransfer, which the command's soft memory limit comes from) is the
// tee's budget and the ranged downloads', without the S3 targets' part buffers. Before, such a
// file went to a plain Put that filled part buffers, so the limit had to count both budgets,
// and the collector let a fan-out's heap grow some 30 MB more than it ever held.
func TestFanOutOneLegTakesNoPartBuffers(t *testing.T) {
	up := newUpstream(t, largeConfig(), nil)
	s3 := targettest.New(t, targettest.MinIO, targettest.Options{Prefix: "maas/stable/", S3: s3store.Options{PartSize: s3store.MinPartSize}})
	dir := targettest.New(t, targettest.Directory, targettest.Options{})
	base := sync.Options{Selection: sync.Selection{Max: 1, Verification: sync.Verification{Keyring: up.keyring}}}

	// The directory holds the amd64 files already.
	first := base
	first.Filters = mustParse(t, "release=noble", "arch=amd64")
	if _, err := sync.Run(t.Context(), up.src, dir.Store, first); err != nil {
		t.Fatal(err)
	}

	var calls []int64
	opts := base
	opts.Filters = mustParse(t, "release=noble")
	opts.OnTransfer = func(buffers int64) func() {
		calls = append(calls, buffers)
		return nil
	}
	fr, err := sync.RunTargets(t.Context(), up.src, []store.Target{s3.Store, dir.Store}, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := selected(t, up.stream, "release=noble")
	for i, tg := range []*targettest.Target{s3, dir} {
		if res := fr.Targets[i]; res.Err != nil {
			t.Fatalf("%s: %v", res.Target, res.Err)
		}
		checkTarget(t, up, tg, want)
	}
	if n := fr.Targets[0].Report.Fetched; n != len(want) {
		t.Fatalf("the S3 target fetched %d files, want %d (every one)", n, len(want))
	}
	if peak := s3.Store.(*s3store.Store).PeakBuffers(); peak != 0 {
		t.Errorf("the S3 target took %d bytes of part buffers in a fan-out, want none: its Puts read the tee", peak)
	}
	ranges := int64(sync.DefaultRangeFiles * sync.DefaultRangeStreams * sync.DefaultRangeChunk)
	if len(calls) != 1 || calls[0] != sync.DefaultFanOutBuffer+ranges {
		t.Errorf("OnTransfer heard of %v bytes of buffers, want once the fan-out buffer and the ranges' chunks, %d", calls, sync.DefaultFanOutBuffer+ranges)
	}
}
