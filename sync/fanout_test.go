package sync_test

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/store/memstore"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// servedBytes counts, at the upstream HTTP server, the body bytes it sent for each path.
type servedBytes struct {
	mu    gosync.Mutex
	bytes map[string]int64
}

func (c *servedBytes) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&countingWriter{ResponseWriter: w, c: c, path: strings.TrimPrefix(r.URL.Path, "/")}, r)
	})
}

func (c *servedBytes) of(path string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes[path]
}

func (c *servedBytes) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.bytes)
}

type countingWriter struct {
	http.ResponseWriter
	c    *servedBytes
	path string
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.c.mu.Lock()
	w.c.bytes[w.path] += int64(n)
	w.c.mu.Unlock()
	return n, err
}

// newCountedUpstream is newUpstream with the bytes served counted per path.
func newCountedUpstream(t *testing.T, cfg streamtest.Config) (*upstream, *servedBytes) {
	t.Helper()
	s, err := streamtest.Generate(cfg, loadSigner(t, "test-signing-key.asc"))
	if err != nil {
		t.Fatal(err)
	}
	c := &servedBytes{bytes: map[string]int64{}}
	srv := httptest.NewServer(c.wrap(s.Handler()))
	t.Cleanup(srv.Close)
	src, err := httpstore.New(srv.Client(), srv.URL+"/", httpstore.Options{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &upstream{stream: s, server: srv, src: src, keyring: testKeyring(t)}, c
}

// checkTarget checks a target of a fan-out run the way the single-target tests check theirs,
// through an independent reader: a bucket with minio-go (checkBucket: every selected item with
// the catalogue's size and recorded sha256, metadata byte for byte, no incomplete upload), a
// directory file by file (exactly the selected content, each with the catalogue's sha256,
// metadata byte for byte).
func checkTarget(t *testing.T, up *upstream, tg *targettest.Target, want []string) {
	t.Helper()
	switch {
	case tg.Kind.IsS3():
		checkBucket(t, &s3env{srv: tg.Server, mc: tg.Server.MinioClient(t), bucket: tg.Bucket, dst: tg.Store.(*s3store.Store)}, up, want, nil)
	case tg.Kind == targettest.Directory:
		files := tree(t, tg.Dir)
		if diff := gocmp.Diff(want, contentPaths(files)); diff != "" {
			t.Errorf("%s: content (-want +got):\n%s", tg.Location, diff)
		}
		for _, p := range want {
			if got := sha256Hex(files[p]); got != up.stream.SHA256(p) {
				t.Errorf("%s: %s has sha256 %s, catalogue says %s", tg.Location, p, got, up.stream.SHA256(p))
			}
		}
		checkVerbatim(t, up, files)
	default:
		t.Fatalf("no check for %s", tg.Kind)
	}
}

// fanOutTargets makes a MinIO bucket, a bucket of the second kind (MinIO: on the same server,
// or with ownServer on one of its own; or another S3 implementation) and a directory, the mirror
// at maas/stable/ in the buckets as checkBucket expects.
func fanOutTargets(t *testing.T, second targettest.Kind, ownServer bool) []*targettest.Target {
	opts := targettest.Options{Prefix: "maas/stable/", S3: s3store.Options{PartSize: s3store.MinPartSize, PartConcurrency: 2}}
	a := targettest.New(t, targettest.MinIO, opts)
	opts.OwnServer = ownServer
	b := targettest.New(t, second, opts)
	return []*targettest.Target{a, b, targettest.New(t, targettest.Directory, opts)}
}

func stores(tgs []*targettest.Target) []store.Target {
	out := make([]store.Target, len(tgs))
	for i, tg := range tgs {
		out[i] = tg.Store
	}
	return out
}

// TestFanOutThreeTargets: one run publishes to two MinIO buckets and a directory, each as
// consistent as a single-target run leaves it, with every upstream byte read once (counted by
// the run; at the upstream server, each file served exactly once) and the catalogue read once;
// the next run moves no content.
func TestFanOutThreeTargets(t *testing.T) {
	for _, c := range []struct {
		name      string
		second    targettest.Kind
		ownServer bool
	}{
		{"one MinIO", targettest.MinIO, false},
		{"two MinIOs", targettest.MinIO, true},
		{"MinIO and SeaweedFS", targettest.SeaweedFS, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			up, served := newCountedUpstream(t, largeConfig())
			tgs := fanOutTargets(t, c.second, c.ownServer)
			filters := []string{"arch=amd64", "release~(jammy|noble)"}
			want := selected(t, up.stream, filters...)
			opts := sync.Options{
				Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}},
				Tuning:    sync.Tuning{RangeChunk: 1 << 20, RangeStreams: 3},
			}
			fr, err := sync.RunTargets(t.Context(), up.src, stores(tgs), opts)
			if err != nil {
				t.Fatal(err)
			}
			var wantBytes int64
			for _, p := range want {
				wantBytes += up.stream.Content[p]
				// Served once, exactly: a file whose own connection is slow (here: paced by the
				// targets) gains range streams (ranged.Pool), but its own connection only ever
				// asks for bounded windows it reads to their end, so the server sends no byte
				// twice and none for nobody. A second reading for another target would serve the
				// file twice.
				if n, size := served.of(p), up.stream.Content[p]; n != size {
					t.Errorf("upstream served %d bytes of %s, want exactly its %d", n, p, size)
				}
			}
			if fr.UpstreamBytes != wantBytes {
				t.Errorf("report: %d upstream bytes, want %d", fr.UpstreamBytes, wantBytes)
			}
			if n := up.stream.Requests("streams/v1/index.sjson"); n != 1 {
				t.Errorf("the index was read %d times, want once", n)
			}
			for i, tg := range tgs {
				res := fr.Targets[i]
				if res.Err != nil || res.Report == nil {
					t.Fatalf("%s: %v", res.Target, res.Err)
				}
				if res.Target != store.Describe(tg.Store) {
					t.Errorf("result %d is for %s, want %s", i, res.Target, store.Describe(tg.Store))
				}
				if res.Report.Fetched != len(want) || res.Report.FetchedBytes != wantBytes {
					t.Errorf("%s: fetched %d files (%d bytes), want %d (%d)", res.Target, res.Report.Fetched, res.Report.FetchedBytes, len(want), wantBytes)
				}
				checkTarget(t, up, tg, want)
			}

			// Up to date: nothing read from upstream but the catalogue, nothing written.
			served.reset()
			up.stream.ResetRequests()
			fr, err = sync.RunTargets(t.Context(), up.src, stores(tgs), opts)
			if err != nil {
				t.Fatal(err)
			}
			if n := up.stream.ContentRequests(); n != 0 || fr.UpstreamBytes != 0 {
				t.Errorf("up-to-date fan-out run: %d content requests, %d bytes", n, fr.UpstreamBytes)
			}
			for _, res := range fr.Targets {
				if r := res.Report; r.Fetched+r.Copied+r.CopiedFrom != 0 || len(r.MetadataWritten) != 0 {
					t.Errorf("%s: up-to-date run fetched %d, copied %d+%d, wrote %v", res.Target, r.Fetched, r.Copied, r.CopiedFrom, r.MetadataWritten)
				}
			}
			for _, tg := range tgs {
				checkTarget(t, up, tg, want)
			}
		})
	}
}

// TestFanOutOneTargetFails: a target that cannot be written (its bucket does not exist; its
// server killed in the middle of the transfer) fails and publishes nothing; the others publish;
// the error names it.
func TestFanOutOneTargetFails(t *testing.T) {
	for _, how := range []string{"no such bucket", "server killed"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, largeConfig(), nil)
			opts := targettest.Options{Prefix: "maas/stable/", S3: s3store.Options{PartSize: s3store.MinPartSize, PartConcurrency: 2}}
			good := targettest.New(t, targettest.MinIO, opts)
			dir := targettest.New(t, targettest.Directory, opts)
			var bad store.Target
			var badName string
			switch how {
			case "no such bucket":
				missing := s3store.New(good.Client, "no-such-bucket-fanout", "maas/stable/", good.S3)
				bad, badName = missing, store.Describe(missing)
			case "server killed":
				opts.OwnServer = true
				own := targettest.New(t, targettest.MinIO, opts)
				// Requests to a dead server are not tried eight times over (the test's time).
				client := s3.New(own.Client.Options(), func(o *s3.Options) { o.RetryMaxAttempts = 1 })
				killed := s3store.New(client, own.Bucket, own.Prefix, own.S3)
				bad = &killOnPut{Target: killed, kill: own.Server.Kill}
				badName = store.Describe(killed)
			}
			filters := []string{"arch=amd64", "release=noble"}
			want := selected(t, up.stream, filters...)
			fr, err := sync.RunTargets(t.Context(), up.src, []store.Target{good.Store, bad, dir.Store},
				sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}})
			var te *sync.TargetsError
			if !errors.As(err, &te) || len(te.Failed) != 1 || te.Failed[0].Target != badName {
				t.Fatalf("want a TargetsError for %s alone, got %v", badName, err)
			}
			if !strings.Contains(err.Error(), badName) || !strings.Contains(err.Error(), "1 of 3 targets failed") {
				t.Errorf("error does not name the failed target: %v", err)
			}
			t.Logf("error: %v", err)
			if fr.Targets[1].Err == nil {
				t.Error("the failed target's result has no error")
			}
			if fr.Targets[0].Err != nil || fr.Targets[2].Err != nil {
				t.Fatalf("the other targets failed: %v, %v", fr.Targets[0].Err, fr.Targets[2].Err)
			}
			checkTarget(t, up, good, want)
			checkTarget(t, up, dir, want)
			if r := fr.Targets[1].Report; r != nil && len(r.MetadataWritten) != 0 {
				t.Errorf("the failed target published %v", r.MetadataWritten)
			}
		})
	}
}

// killOnPut kills its server as the first content Put into it begins.
type killOnPut struct {
	store.Target
	kill func()
	once gosync.Once
}

func (k *killOnPut) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	if !strings.HasPrefix(key, "streams/") && !strings.HasPrefix(key, ".ssmirror") {
		k.once.Do(k.kill)
	}
	return k.Target.Put(ctx, key, r, opts)
}

func (k *killOnPut) Unwrap() store.Source { return k.Target }

func (k *killOnPut) Describe() string { return store.Describe(k.Target) }

// TestFanOutSlowTargetGivenUp: a target that falls more than FanOutBuffer behind the fastest is
// given up on (ErrFellBehind) and publishes nothing; the fast one publishes without waiting for
// it.
func TestFanOutSlowTargetGivenUp(t *testing.T) {
	// The slow target waits for the fast one to finish: it is given up on once it has held the
	// stream back this long.
	defer sync.SetFanOutPatience(100 * time.Millisecond)()
	up := newUpstream(t, largeConfig(), nil)
	fast := &signalPut{Target: memstore.New(), done: map[string]chan struct{}{}}
	slow := &waitPut{Target: memstore.New(), fast: fast}
	filters := []string{"arch=amd64", "release=noble"}
	fr, err := sync.RunTargets(t.Context(), up.src, []store.Target{fast, slow},
		sync.Options{
			Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}},
			Tuning:    sync.Tuning{FanOutBuffer: 256 << 10, Concurrency: 1},
		})
	if !errors.Is(err, sync.ErrFellBehind) {
		t.Fatalf("want ErrFellBehind, got %v", err)
	}
	if fr.Targets[0].Err != nil {
		t.Fatalf("the fast target failed: %v", fr.Targets[0].Err)
	}
	if !errors.Is(fr.Targets[1].Err, sync.ErrFellBehind) {
		t.Errorf("the slow target's error: %v", fr.Targets[1].Err)
	}
	if _, err := fast.Stat(t.Context(), "streams/v1/index.sjson"); err != nil {
		t.Errorf("the fast target is not published: %v", err)
	}
	if _, err := slow.Stat(t.Context(), "streams/v1/index.sjson"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("the slow target published: %v", err)
	}
}

// signalPut says when each Put of a large file has returned.
type signalPut struct {
	store.Target
	mu   gosync.Mutex
	done map[string]chan struct{}
}

func (s *signalPut) ch(key string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.done[key]
	if !ok {
		c = make(chan struct{})
		s.done[key] = c
	}
	return c
}

func (s *signalPut) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	info, err := s.Target.Put(ctx, key, r, opts)
	if opts.Size > 1<<20 {
		close(s.ch(key))
	}
	return info, err
}

func (s *signalPut) Unwrap() store.Source { return s.Target }

// waitPut starts reading a large file only once the fast target has it whole.
type waitPut struct {
	store.Target
	fast *signalPut
}

func (w *waitPut) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	if opts.Size > 1<<20 {
		select {
		case <-w.fast.ch(key):
		case <-ctx.Done():
		}
	}
	return w.Target.Put(ctx, key, r, opts)
}

func (w *waitPut) Unwrap() store.Source { return w.Target }

// TestFanOutCopiesFromAnotherTarget: a file one target holds and another lacks is copied
// server-side (CopierFrom) into the one that lacks it, not fetched.
func TestFanOutCopiesFromAnotherTarget(t *testing.T) {
	up, served := newCountedUpstream(t, smallConfig())
	filters := []string{"arch=amd64", "release=noble"}
	want := selected(t, up.stream, filters...)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}}
	holder := memstore.New()
	run(t, up, holder, opts)
	served.reset()
	lacking := &copierFrom{Target: memstore.New(), from: holder}
	fr, err := sync.RunTargets(t.Context(), up.src, []store.Target{holder, lacking}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r := fr.Targets[1].Report; r.CopiedFrom != len(want) || r.Fetched != 0 {
		t.Errorf("copied from the other target %d, fetched %d; want %d copied", r.CopiedFrom, r.Fetched, len(want))
	}
	if lacking.copies != len(want) {
		t.Errorf("%d CopyFrom calls, want %d", lacking.copies, len(want))
	}
	for _, p := range want {
		if n := served.of(p); n != 0 {
			t.Errorf("%s: upstream served %d bytes", p, n)
		}
		info, err := lacking.Stat(t.Context(), p)
		if err != nil || info.SHA256 != up.stream.SHA256(p) {
			t.Errorf("%s in the target that lacked it: %+v, %v", p, info, err)
		}
	}
}

// copierFrom is a memory target that copies from one other memory target (as s3store copies
// between buckets of one endpoint), checked like a Put.
type copierFrom struct {
	store.Target
	from   store.Target
	mu     gosync.Mutex
	copies int
}

func (c *copierFrom) CanCopyFrom(src store.Target) bool { return src == c.from }

func (c *copierFrom) CopyFrom(ctx context.Context, dstKey string, src store.Target, srcKey string, opts store.PutOptions) (store.Info, error) {
	rc, err := src.Open(ctx, srcKey, 0)
	if err != nil {
		return store.Info{}, err
	}
	defer rc.Close()
	c.mu.Lock()
	c.copies++
	c.mu.Unlock()
	return c.Target.Put(ctx, dstKey, rc, opts)
}

func (c *copierFrom) Unwrap() store.Source { return c.Target }

// TestFanOutCopiesFromAnotherBucket is TestFanOutCopiesFromAnotherTarget with s3store's own
// CopierFrom: two buckets of one MinIO server, the files one holds copied server-side into the
// other, none fetched from upstream.
func TestFanOutCopiesFromAnotherBucket(t *testing.T) {
	up, served := newCountedUpstream(t, smallConfig())
	filters := []string{"arch=amd64", "release=noble"}
	want := selected(t, up.stream, filters...)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}}
	topts := targettest.Options{Prefix: "maas/stable/"}
	holder := targettest.New(t, targettest.MinIO, topts)
	lacking := targettest.New(t, targettest.MinIO, topts)
	if cf, ok := store.As[store.CopierFrom](lacking.Store); !ok || !cf.CanCopyFrom(holder.Store) {
		t.Fatal("two buckets of one MinIO server: the second cannot copy from the first")
	}
	run(t, up, holder.Store, opts)
	served.reset()
	fr, err := sync.RunTargets(t.Context(), up.src, []store.Target{holder.Store, lacking.Store}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r := fr.Targets[1].Report; r.CopiedFrom != len(want) || r.Fetched != 0 {
		t.Errorf("copied from the other bucket %d, fetched %d; want %d copied", r.CopiedFrom, r.Fetched, len(want))
	}
	if fr.UpstreamBytes != 0 {
		t.Errorf("%d content bytes read from upstream, want 0", fr.UpstreamBytes)
	}
	for _, p := range want {
		if n := served.of(p); n != 0 {
			t.Errorf("%s: upstream served %d bytes", p, n)
		}
	}
	checkTarget(t, up, lacking, want)
}

// TestTargetsErrorWording: the error of a fan-out says the others published only when some did.
func TestTargetsErrorWording(t *testing.T) {
	failed := sync.TargetResult{Target: "s3://a", Err: errors.New("no such bucket")}
	some := (&sync.TargetsError{Failed: []sync.TargetResult{failed}, Targets: 2}).Error()
	if !strings.HasPrefix(some, "1 of 2 targets failed (the others published):") || !strings.Contains(some, "s3://a: no such bucket") {
		t.Errorf("one of two failed: %q", some)
	}
	all := (&sync.TargetsError{Failed: []sync.TargetResult{failed, {Target: "/b", Err: errors.New("full")}}, Targets: 2}).Error()
	if !strings.HasPrefix(all, "all 2 targets failed:") || strings.Contains(all, "published") {
		t.Errorf("both failed: %q", all)
	}
}

// TestFanOutProgressCountsOnce: the progress of a fan-out run counts each file once, whatever
// the number of targets it goes to and however it gets there (copied server-side from another
// target into two, streamed to two others): the bytes done end equal to the bytes planned, and
// never pass them.
func TestFanOutProgressCountsOnce(t *testing.T) {
	up, _ := newCountedUpstream(t, smallConfig())
	filters := []string{"arch=amd64", "release=noble"}
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}}
	holder := memstore.New()
	run(t, up, holder, opts)
	p := &sync.Progress{}
	opts.Progress = p
	var (
		mu   gosync.Mutex
		over int64
	)
	watch := func() {
		s := p.Snapshot()
		mu.Lock()
		over = max(over, s.BytesDone-s.Bytes)
		mu.Unlock()
	}
	targets := []store.Target{
		holder,
		&copierFrom{Target: memstore.New(), from: holder},
		&copierFrom{Target: memstore.New(), from: holder},
		&watchPut{Target: memstore.New(), watch: watch},
		&watchPut{Target: memstore.New(), watch: watch},
	}
	if _, err := sync.RunTargets(t.Context(), up.src, targets, opts); err != nil {
		t.Fatal(err)
	}
	s := p.Snapshot()
	if s.Bytes == 0 || s.BytesDone != s.Bytes || over > 0 {
		t.Errorf("progress: %d of %d bytes done at the end, at most %d bytes over during the run", s.BytesDone, s.Bytes, over)
	}
}

// watchPut calls watch after each Put.
type watchPut struct {
	store.Target
	watch func()
}

func (w *watchPut) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	info, err := w.Target.Put(ctx, key, r, opts)
	w.watch()
	return info, err
}

func (w *watchPut) Unwrap() store.Source { return w.Target }

// TestFanOutCorruptUpstreamRefused: a file upstream serves with a flipped byte, and one it serves
// cut short, are refused by every target of a fan-out (two MinIO buckets and a directory, whose
// Puts do not hash what the tee has verified) and nothing is published anywhere: the tee ends a
// stream that does not check out with an error, never with io.EOF, so no target completes it.
func TestFanOutCorruptUpstreamRefused(t *testing.T) {
	up, _ := newCountedUpstream(t, largeConfig())
	filters := []string{"arch=amd64", "release~(jammy|noble)"}
	want := selected(t, up.stream, filters...)
	slices.SortFunc(want, func(a, b string) int { return cmp.Compare(up.stream.Content[b], up.stream.Content[a]) })
	flipped, short := want[0], want[1] // the two largest: several parts each
	if err := up.stream.Corrupt(flipped); err != nil {
		t.Fatal(err)
	}
	up.stream.SetOverride(short, func(r io.Reader) io.Reader { return io.LimitReader(r, up.stream.Content[short]-1000) })
	tgs := fanOutTargets(t, targettest.MinIO, false)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}}
	fr, err := sync.RunTargets(t.Context(), up.src, stores(tgs), opts)
	if err == nil {
		t.Fatal("the run succeeded with a corrupted upstream")
	}
	for i, tg := range tgs {
		if fr.Targets[i].Err == nil {
			t.Errorf("%s published", tg.Location)
		}
		for _, p := range []string{flipped, short, "streams/v1/index.json", "streams/v1/index.sjson"} {
			if _, err := tg.Store.Stat(t.Context(), p); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("%s: %s is there (%v)", tg.Location, p, err)
			}
		}
		if tg.Kind.IsS3() {
			if n, err := tg.Store.(*s3store.Store).CleanLeftovers(t.Context(), store.LeftoverOptions{}); n != 0 || err != nil {
				t.Errorf("%s: %d incomplete uploads left (%v)", tg.Location, n, err)
			}
		}
	}
}
