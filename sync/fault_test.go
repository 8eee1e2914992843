package sync_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/faultproxy"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// startProxy serves a fault proxy in front of target on loopback.
func startProxy(t *testing.T, target string, opts faultproxy.Options) (*faultproxy.Proxy, string) {
	t.Helper()
	p, err := faultproxy.New(target, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

// throughProxy points up.src at a fault proxy in front of the upstream server.
func throughProxy(t *testing.T, up *upstream, hopts httpstore.Options, opts faultproxy.Options) *faultproxy.Proxy {
	t.Helper()
	p, u := startProxy(t, up.server.URL, opts)
	src, err := httpstore.New(&http.Client{}, u+"/", hopts)
	if err != nil {
		t.Fatal(err)
	}
	up.src = src
	return p
}

// isContentGet matches GETs of content files (everything but the streams/ metadata tree).
func isContentGet(r *http.Request) bool {
	return r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/streams/")
}

// selectedSize sums the catalogue sizes of paths.
func selectedSize(up *upstream, paths []string) int64 {
	sizes := map[string]int64{}
	for _, it := range up.stream.Items {
		sizes[it.Path] = it.Size
	}
	var n int64
	for _, p := range paths {
		n += sizes[p]
	}
	return n
}

// faultConfig has multi-MiB files so that resets land mid-body and squashfs files go multipart.
func faultConfig() streamtest.Config {
	cfg := smallConfig("20250718")
	cfg.Kernels = []string{"ga", "hwe", "hwe-edge"}
	cfg.SquashfsSize = 6<<20 + 12345
	cfg.KernelSize = 1<<20 + 99
	cfg.InitrdSize = 2<<20 + 7
	return cfg
}

// TestFaultySyncIntoS3: with 10% of upstream content responses reset mid-body, 5% answered 503
// and 5% of S3 requests answered SlowDown, a full sync completes and the bucket checks out, and
// what was downloaded stays close to the selection's size (bodies resume, they do not restart).
func TestFaultySyncIntoS3(t *testing.T) {
	up := newUpstream(t, faultConfig(), nil)
	upProxy := throughProxy(t, up, httpstore.Options{}, faultproxy.Options{
		Seed: 6,
		Faults: []faultproxy.Fault{
			{Kind: faultproxy.Reset, Rate: 0.10, Filter: isContentGet},
			{Kind: faultproxy.Status503, Rate: 0.05, Filter: isContentGet},
		},
	})

	e := newS3Target(t, testserver.KindMinIO)
	uploadID := regexp.MustCompile(`uploadId=[^&]*`)
	s3Proxy, s3URL := startProxy(t, e.srv.Endpoint, faultproxy.Options{
		Seed: 6,
		Faults: []faultproxy.Fault{
			// At least one SlowDown whatever the draws give (they depend on how many lease and
			// listing requests a run makes): the first upload of a kernel.
			{Kind: faultproxy.SlowDown, Rate: 1, Max: 1, Methods: []string{http.MethodPut}, Path: regexp.MustCompile(`/boot-kernel(\?|$)`)},
			{Kind: faultproxy.SlowDown, Rate: 0.05},
		},
		// Upload ids differ between runs; without them every run draws the same faults.
		Key: func(r *http.Request) string {
			return r.Method + " " + uploadID.ReplaceAllString(r.URL.RequestURI(), "")
		},
	})
	opts := s3store.Options{Endpoint: s3URL, PartSize: s3store.MinPartSize, PartConcurrency: 2}
	client := targettest.Client(t, e.srv, &opts)
	e.dst = s3store.New(client, e.bucket, "maas/stable/", opts)

	filters := []string{"release~(jammy|noble)"}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rep, err := sync.Run(ctx, up.src, e.dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}})
	if err != nil {
		t.Fatalf("sync through faults: %v", err)
	}
	want := selected(t, up.stream, filters...)
	checkBucket(t, e, up, want, nil)

	us, ss := upProxy.Stats(), s3Proxy.Stats()
	size := selectedSize(up, want)
	t.Logf("upstream: %d requests, faults %v; %d bytes downloaded for %d files of %d bytes (%.3f×)",
		us.Requests, us.Faults, us.BytesOut, len(want), size, float64(us.BytesOut)/float64(size))
	t.Logf("S3: %d requests, faults %v; %d bytes uploaded; fetched %d files", ss.Requests, ss.Faults, ss.BytesIn, rep.Fetched)
	if us.Faults[faultproxy.Reset] == 0 || us.Faults[faultproxy.Status503] == 0 || ss.Faults[faultproxy.SlowDown] == 0 {
		t.Errorf("the test injected too little to show anything: upstream %v, S3 %v", us.Faults, ss.Faults)
	}
	if rep.Fetched != len(want) {
		t.Errorf("fetched %d files, want %d", rep.Fetched, len(want))
	}
	if us.BytesOut > size*13/10 {
		t.Errorf("downloaded %d bytes for %d: interrupted bodies were fetched again instead of resumed", us.BytesOut, size)
	}
}

// TestCorruptFileFailsAfterRetries: every response for one file has a flipped byte. The file is
// fetched exactly three times, the run fails naming it, and the published mirror is unchanged.
func TestCorruptFileFailsAfterRetries(t *testing.T) {
	dir, dst := newTarget(t)
	filters := mustParse(t, "release=noble", "arch=amd64")
	old := newUpstream(t, smallConfig("20250701"), nil)
	run(t, old, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}})
	before := tree(t, dir)

	up := newUpstream(t, smallConfig("20250701", "20250718"), nil)
	var victim string
	for _, it := range up.stream.Items {
		if it.Version == "20250718" && strings.HasPrefix(it.Path, "noble/amd64/") && strings.HasSuffix(it.Path, "squashfs") {
			victim = it.Path
		}
	}
	p := throughProxy(t, up, httpstore.Options{}, faultproxy.Options{Faults: []faultproxy.Fault{{
		Kind: faultproxy.Flip, Rate: 1, Methods: []string{http.MethodGet},
		Path: regexp.MustCompile("^/" + regexp.QuoteMeta((&url.URL{Path: victim}).EscapedPath()) + "$"),
	}}})
	_, err := sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1, Verification: sync.Verification{Keyring: up.keyring}}})
	if err == nil {
		t.Fatal("the run succeeded with a file corrupted on every attempt")
	}
	if !errors.Is(err, store.ErrChecksum) || !strings.Contains(err.Error(), victim) {
		t.Errorf("want a checksum error naming %s, got %v", victim, err)
	}
	t.Logf("error: %v", err)
	if n := up.stream.Requests(victim); n != 3 {
		t.Errorf("%s was requested %d times, want 3 (one attempt and two retries)", victim, n)
	}
	if n := p.Stats().Faults[faultproxy.Flip]; n != 3 {
		t.Errorf("%d flipped responses, want 3", n)
	}
	after := checkNothingPublished(t, dir, before, victim)
	for path, data := range after {
		if _, ok := before[path]; ok || strings.HasPrefix(path, "streams/") {
			continue
		}
		// New content may arrive ahead of the metadata, but only whole and correct.
		if want, err := io.ReadAll(up.stream.OpenContent(path)); err != nil || !bytes.Equal(data, want) {
			t.Errorf("new file %s is not upstream's (err %v)", path, err)
		}
	}
}

// TestStallDetected: a body that stops sending is given up on after the stall timeout and
// resumed from where it stopped; the stall never outlasts the client.
func TestStallDetected(t *testing.T) {
	const stallTimeout = 300 * time.Millisecond
	up := newUpstream(t, faultConfig(), nil)
	var victim string
	var victimSize int64
	for _, it := range up.stream.Items {
		if strings.HasPrefix(it.Path, "noble/amd64/") && strings.HasSuffix(it.Path, "squashfs") {
			victim, victimSize = it.Path, it.Size
		}
	}
	p := throughProxy(t, up, httpstore.Options{StallTimeout: stallTimeout}, faultproxy.Options{Faults: []faultproxy.Fault{{
		Kind: faultproxy.Stall, Rate: 1, Max: 1, At: 2 << 20, Methods: []string{http.MethodGet},
		Path: regexp.MustCompile("^/" + regexp.QuoteMeta(victim) + "$"),
		// Stall: 0, a minute: far beyond the run's own deadline below.
	}}})
	dir, dst := newTarget(t)
	filters := []string{"release=noble", "arch=amd64"}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := sync.Run(ctx, up.src, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}}); err != nil {
		t.Fatalf("sync with a stalled body: %v", err)
	}
	s := p.Stats()
	t.Logf("stall timeout %v; client hung up after %v; %d requests for %s", stallTimeout, s.StallWaits, up.stream.Requests(victim), victim)
	if s.Faults[faultproxy.Stall] != 1 || s.StallsOutlasted != 0 || len(s.StallWaits) != 1 {
		t.Fatalf("stats %+v: want one stall, ended by the client", s)
	}
	if n := up.stream.Requests(victim); n != 2 {
		t.Errorf("%s requested %d times, want 2 (the stalled request and one resume)", victim, n)
	}
	want := selected(t, up.stream, filters...)
	if size := selectedSize(up, want); s.BytesOut > size+victimSize/2 {
		t.Errorf("downloaded %d bytes for %d: the stalled body was not resumed", s.BytesOut, size)
	}
	files := tree(t, dir)
	for _, path := range want {
		data, err := io.ReadAll(up.stream.OpenContent(path))
		if err != nil || !bytes.Equal(files[path], data) {
			t.Errorf("%s is not upstream's (err %v)", path, err)
		}
	}
}
