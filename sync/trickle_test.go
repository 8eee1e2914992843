package sync_test

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

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

// TestFanOutTricklingTargetGivenUp (issue 24, fault 3): of three MinIO buckets, one takes its
// uploads at 100 KB/s: it keeps moving, so the stall rule never gave up on it, and every target
// published only once it was done (about a minute for these files). By the slow-target rule
// (a target writing at less than 1/tee.SlowFactor of the fastest one's rate while it holds
// the others back is given up on after the patience, 5 s, in all on one file) the two others
// publish within the patience plus their own transfer; the trickling one fails this run
// (ErrFellBehind), publishes nothing, and catches up by itself in the next run once its link
// is fast again.
func TestFanOutTricklingTargetGivenUp(t *testing.T) {
	srv := testserver.Shared(t, testserver.KindMinIO)
	up := newUpstream(t, largeConfig(), nil)
	filters := []string{"arch=amd64", "release=noble"}
	want := selected(t, up.stream, filters...)
	var envs []*s3env
	var slow *throttledClient
	var targets []store.Target
	for i := range 3 {
		opts := s3store.Options{PartSize: s3store.MinPartSize, PartConcurrency: 2}
		client := targettest.Client(t, srv, &opts)
		if i == 2 {
			slow = &throttledClient{rate: 100_000}
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
	opts := sync.Options{
		Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}},
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
	// The rule's bound: the patience (5 s) of holding the others back, plus their own transfer
	// and publish (under a second here) and room for a loaded machine.
	if bound := 15 * time.Second; took > bound {
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
