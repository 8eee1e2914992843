package sync_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// throttledClient sends the bodies of its requests (a bucket's uploads) at rate bytes per
// second while on is set: a link that keeps moving, slowly.
type throttledClient struct {
	inner s3.HTTPClient
	rate  int64
	on    atomic.Bool
}

func (c *throttledClient) Do(r *http.Request) (*http.Response, error) {
	if c.on.Load() && r.Body != nil && r.Body != http.NoBody && r.Method == http.MethodPut {
		r.Body = &trickle{ReadCloser: r.Body, rate: c.rate, ctx: r.Context().Done()}
	}
	return c.inner.Do(r)
}

// trickle reads at most rate bytes a second, in small pieces, through its ReadCloser.
type trickle struct {
	io.ReadCloser
	rate int64
	ctx  <-chan struct{}
}

func (t *trickle) Read(p []byte) (int, error) {
	piece := int(max(t.rate/10, 1))
	if len(p) > piece {
		p = p[:piece]
	}
	select {
	case <-time.After(time.Duration(len(p)) * time.Second / time.Duration(t.rate)):
	case <-t.ctx:
		return 0, errors.New("request cancelled")
	}
	return t.ReadCloser.Read(p)
}

// throttledBuckets makes n buckets on srv holding a mirror at maas/stable/ (5 MiB parts, two in
// flight), the last of which takes its uploads at rate bytes a second while slow.on is set.
func throttledBuckets(t *testing.T, srv *testserver.Server, n int, rate int64) (envs []*s3env, targets []store.Target, slow *throttledClient) {
	for i := range n {
		opts := s3store.Options{PartSize: s3store.MinPartSize, PartConcurrency: 2}
		client := targettest.Client(t, srv, &opts)
		if i == n-1 {
			slow = &throttledClient{rate: rate}
			slow.on.Store(true)
			client = s3.New(client.Options(), func(o *s3.Options) {
				slow.inner = o.HTTPClient
				o.HTTPClient = slow
			})
		}
		bucket := srv.NewBucket(t, t.Name())
		e := &s3env{srv: srv, mc: srv.MinioClient(t), bucket: bucket, dst: s3store.New(client, bucket, "maas/stable/", opts)}
		envs = append(envs, e)
		targets = append(targets, e.dst)
	}
	return envs, targets, slow
}

// TestFanOutTricklingTargetGivenUp (issue 24, fault 3): of three MinIO buckets, one takes its
// uploads at 100 KB/s: it keeps moving, so a stall rule alone never gave up on it, and every
// target published only once it was done (about a minute for these files). With 1 MiB/s the
// slowest a file may come at (Limits.MinRate), it trickles below it: by the slow-target rule
// (a target holding the others back is given up on once that time, less what its writing at
// MinRate accounts for, is beyond the patience, 5 s, plus its parts in flight at MinRate) the
// two others publish within that bound plus their own transfer; the trickling one fails this
// run (ErrFellBehind), publishes nothing, and catches up by itself in the next run once its
// link is fast again.
func TestFanOutTricklingTargetGivenUp(t *testing.T) {
	srv := testserver.Shared(t, testserver.KindMinIO)
	up := newUpstream(t, largeConfig(), nil)
	filters := []string{"arch=amd64", "release=noble"}
	want := selected(t, up.stream, filters...)
	envs, targets, slow := throttledBuckets(t, srv, 3, 100_000)
	const minRate = 1 << 20
	opts := sync.Options{
		Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}},
		Limits:    sync.Limits{MinRate: minRate},
	}
	start := time.Now()
	fr, err := sync.RunTargets(t.Context(), up.src, targets, opts)
	took := time.Since(start)
	if !errors.Is(err, sync.ErrFellBehind) {
		t.Fatalf("want ErrFellBehind, got %v", err)
	}
	for i := range 2 {
		if fr.Targets[i].Err != nil {
			t.Fatalf("target %d failed: %v", i, fr.Targets[i].Err)
		}
		checkBucket(t, envs[i], up, want, nil)
	}
	if !errors.Is(fr.Targets[2].Err, sync.ErrFellBehind) {
		t.Errorf("the trickling target's error: %v", fr.Targets[2].Err)
	}
	if _, err := envs[2].dst.Stat(t.Context(), "streams/v1/index.sjson"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("the trickling target published: %v", err)
	}
	// The rule's bound: the patience (5 s) of holding the others back plus the parts it can
	// hold in flight (at most the file, 6 MiB) at MinRate, plus the others' own transfer and
	// publish (under a second here) and room for a loaded machine.
	if bound := 5*time.Second + time.Duration(largeConfig().SquashfsSize/minRate)*time.Second + 5*time.Second; took > bound {
		t.Errorf("the run took %v, more than %v", took.Round(time.Millisecond), bound)
	}
	t.Logf("the others published after %v", took.Round(time.Millisecond))

	slow.on.Store(false)
	if _, err := sync.RunTargets(t.Context(), up.src, targets, opts); err != nil {
		t.Fatalf("the next run: %v", err)
	}
	for i := range 3 {
		checkBucket(t, envs[i], up, want, nil)
	}
}

// TestFanOutSteadySlowSiteWaitedFor (issue 21): a site on a slow but steady link (its uploads at
// 500 KB/s, far above the slowest a file may come at, 64 KiB/s by default) beside a MinIO bucket
// and a directory that take the file at once. Its two 5 MiB parts take 10 s to send, in which
// it writes nothing of the file while the others are done: it was given up on (ErrFellBehind)
// at its first large file, every run, and never converged. It is waited for: every target
// publishes in the one run, and upstream serves each byte once.
func TestFanOutSteadySlowSiteWaitedFor(t *testing.T) {
	srv := testserver.Shared(t, testserver.KindMinIO)
	cfg := largeConfig()
	cfg.SquashfsSize = 10<<20 + 12345 // two whole parts in flight at once, then the rest
	up, served := newCountedUpstream(t, cfg)
	filters := []string{"arch=amd64", "release=noble"}
	want := selected(t, up.stream, filters...)
	envs, targets, _ := throttledBuckets(t, srv, 2, 500_000)
	dir, dst := newTarget(t)
	targets = append(targets, dst)
	opts := sync.Options{
		Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}},
	}
	fr, err := sync.RunTargets(t.Context(), up.src, targets, opts)
	if err != nil {
		for _, r := range fr.Targets {
			t.Logf("%s: %v", r.Target, r.Err)
		}
		t.Fatalf("the run: %v", err)
	}
	for _, e := range envs {
		checkBucket(t, e, up, want, nil)
	}
	files := tree(t, dir)
	if diff := gocmp.Diff(want, contentPaths(files)); diff != "" {
		t.Errorf("the directory's content (-want +got):\n%s", diff)
	}
	for _, p := range want {
		if got := sha256Hex(files[p]); got != up.stream.SHA256(p) {
			t.Errorf("the directory's %s has sha256 %s, catalogue says %s", p, got, up.stream.SHA256(p))
		}
	}
	checkVerbatim(t, up, files)
	for _, p := range want {
		if n, size := served.of(p), up.stream.Content[p]; n != size {
			t.Errorf("upstream served %d bytes of %s, want exactly its %d", n, p, size)
		}
	}
}

// TestFanOutPausedServerGivenUp: a site's server stops answering mid-upload (SIGSTOP: its
// connections stay open, nothing answers) beside a directory. Its S3 Put sends two parts that
// are never answered and waits for the chunks of the next while they hold the file's room: it
// was charged for nothing (it waited for data too), so the file, the directory and the whole
// run waited for ever. It is given up on within the slow-target rule's bound, the directory
// publishes, and once the server goes on the next run brings the site up to date.
func TestFanOutPausedServerGivenUp(t *testing.T) {
	srv := testserver.MinIO(t)
	cfg := largeConfig()
	cfg.SquashfsSize = 24<<20 + 12345 // more than the file's share of the fan-out buffer
	up := newUpstream(t, cfg, nil)
	filters := []string{"arch=amd64", "release=noble"}
	want := selected(t, up.stream, filters...)
	opts3 := s3store.Options{PartSize: s3store.MinPartSize, PartConcurrency: 2}
	client := targettest.Client(t, srv, &opts3)
	pausing := &pauseOnPart{srv: srv}
	client = s3.New(client.Options(), func(o *s3.Options) {
		pausing.inner = o.HTTPClient
		o.HTTPClient = pausing
	})
	bucket := srv.NewBucket(t, t.Name())
	e := &s3env{srv: srv, mc: srv.MinioClient(t), bucket: bucket, dst: s3store.New(client, bucket, "maas/stable/", opts3)}
	dir, dst := newTarget(t)
	published := make(chan struct{})
	watched := &publishWatch{Target: dst, published: published}
	const minRate = 1 << 20
	opts := sync.Options{
		Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}},
		Limits:    sync.Limits{MinRate: minRate},
		// A file's share of the fan-out buffer below the two parts the site keeps in flight:
		// the site then waits for the chunks of its next part with its parts holding the room.
		Tuning: sync.Tuning{Concurrency: 1, FanOutBuffer: 6 << 20},
	}
	// Once the directory has published, the server goes on: the site's lease and record are
	// then written as after any failure, and the run ends. A run that never publishes the
	// directory ends with the context.
	go func() {
		<-published
		srv.Resume()
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	fr, err := sync.RunTargets(ctx, up.src, []store.Target{e.dst, watched}, opts)
	took := time.Since(start)
	if !pausing.paused.Load() {
		t.Fatal("the server was never paused: the test shows nothing")
	}
	if !errors.Is(err, sync.ErrFellBehind) || !errors.Is(fr.Targets[0].Err, sync.ErrFellBehind) {
		t.Fatalf("want the paused site given up on (ErrFellBehind), got %v (the site: %v)", err, fr.Targets[0].Err)
	}
	if fr.Targets[1].Err != nil {
		t.Fatalf("the directory: %v", fr.Targets[1].Err)
	}
	files := tree(t, dir)
	if diff := gocmp.Diff(want, contentPaths(files)); diff != "" {
		t.Errorf("the directory's content (-want +got):\n%s", diff)
	}
	checkVerbatim(t, up, files)
	// By the slow-target rule: the patience (5 s) plus what it took of the file (at most the
	// file) at MinRate, then the site's own ending once its server went on.
	t.Logf("the run ended after %v", took.Round(time.Millisecond))

	if _, err := sync.RunTargets(t.Context(), up.src, []store.Target{e.dst, dst}, opts); err != nil {
		t.Fatalf("the next run: %v", err)
	}
	checkBucket(t, e, up, want, nil)
}

// pauseOnPart pauses srv (SIGSTOP) at the first part of a multipart upload its client sends,
// before sending it.
type pauseOnPart struct {
	inner  s3.HTTPClient
	srv    *testserver.Server
	paused atomic.Bool
}

func (c *pauseOnPart) Do(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") && c.paused.CompareAndSwap(false, true) {
		if err := c.srv.Pause(); err != nil {
			return nil, err
		}
	}
	return c.inner.Do(r)
}

// publishWatch closes published once the index of the mirror is written into its target.
type publishWatch struct {
	store.Target
	published chan struct{}
	once      gosync.Once
}

func (p *publishWatch) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	info, err := p.Target.Put(ctx, key, r, opts)
	if err == nil && key == "streams/v1/index.sjson" {
		p.once.Do(func() { close(p.published) })
	}
	return info, err
}

func (p *publishWatch) Unwrap() store.Source { return p.Target }
