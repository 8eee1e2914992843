package sync_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockHolderEnv); dir != "" {
		os.Exit(holdLock(dir)) // the test binary re-executed as a lock holder (lock_test.go)
	}
	os.Exit(testserver.RunMain(m))
}

// countingClient counts the HTTP requests the S3 client sends.
type countingClient struct {
	inner s3.HTTPClient
	n     atomic.Int64
	mu    gosync.Mutex
	byOp  map[string]int
}

func (c *countingClient) Do(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	c.mu.Lock()
	c.byOp[r.Method+" "+opName(r)]++
	c.mu.Unlock()
	return c.inner.Do(r)
}

func opName(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case q.Has("list-type"):
		return "list"
	case q.Has("uploads"), q.Has("uploadId"):
		return "multipart"
	}
	return "object"
}

type s3env struct {
	srv     *testserver.Server
	mc      *minio.Client
	counter *countingClient
	bucket  string
	dst     *s3store.Store
}

func newS3Target(t *testing.T, kind testserver.Kind) *s3env {
	t.Helper()
	srv := testserver.Shared(t, kind)
	opts := s3store.Options{PartSize: s3store.MinPartSize, PartConcurrency: 2}
	client := targettest.Client(t, srv, &opts) // sets nothing in the environment: parallel tests may use it
	counter := &countingClient{byOp: map[string]int{}}
	client = s3.New(client.Options(), func(o *s3.Options) {
		counter.inner = o.HTTPClient
		o.HTTPClient = counter
	})
	bucket := srv.NewBucket(t, t.Name())
	return &s3env{srv: srv, mc: srv.MinioClient(t), counter: counter, bucket: bucket, dst: s3store.New(client, bucket, "maas/stable/", opts)}
}

// largeConfig makes squashfs files big enough to go multipart with 5 MiB parts.
func largeConfig() streamtest.Config {
	cfg := smallConfig()
	cfg.SquashfsSize = 6<<20 + 12345
	return cfg
}

// checkBucket checks with an independent client (minio-go) that every item the mirror holds is
// in the bucket with the catalogue's size and recorded sha256, that metadata is as expected, and
// that no incomplete upload is left.
func checkBucket(t *testing.T, e *s3env, up *upstream, want []string, curatedKeyring *sign.Keyring) {
	t.Helper()
	ctx := t.Context()
	sums := map[string]string{}
	sizes := map[string]int64{}
	for _, it := range up.stream.Items {
		sums[it.Path], sizes[it.Path] = it.SHA256, it.Size
	}
	got := map[string]bool{}
	for obj := range e.mc.ListObjects(ctx, e.bucket, minio.ListObjectsOptions{Prefix: "maas/stable/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		got[strings.TrimPrefix(obj.Key, "maas/stable/")] = true
	}
	for _, p := range want {
		if !got[p] {
			t.Errorf("%s missing from the bucket", p)
			continue
		}
		info, err := e.mc.StatObject(ctx, e.bucket, "maas/stable/"+p, minio.StatObjectOptions{})
		if err != nil {
			t.Errorf("stat %s: %v", p, err)
			continue
		}
		if info.Size != sizes[p] {
			t.Errorf("%s: %d bytes, catalogue says %d", p, info.Size, sizes[p])
		}
		if s := info.UserMetadata["Sha256"]; s != sums[p] {
			t.Errorf("%s: recorded sha256 %q, catalogue says %s", p, s, sums[p])
		}
	}
	for p := range got {
		if _, isContent := sizes[p]; isContent && !contains(want, p) {
			t.Errorf("%s is in the bucket but was not selected", p)
		}
	}
	if curatedKeyring == nil {
		for p, data := range up.stream.Files {
			obj, err := e.mc.GetObject(ctx, e.bucket, "maas/stable/"+p, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(obj)
			obj.Close()
			if err != nil || !bytes.Equal(b, data) {
				t.Errorf("metadata %s is not upstream's byte for byte (err %v)", p, err)
			}
		}
	} else {
		cat, err := sync.LoadCatalogue(ctx, e.dst, "", sync.Verification{Keyring: curatedKeyring}, 0, 2)
		if err != nil {
			t.Fatalf("reading the curated bucket: %v", err)
		}
		listed := map[string]bool{}
		for _, it := range cat.Items() {
			listed[it.Path] = true
		}
		for _, p := range want {
			if !listed[p] {
				t.Errorf("curated catalogue does not list %s", p)
			}
		}
		if len(listed) != len(want) {
			t.Errorf("curated catalogue lists %d paths, the mirror holds %d", len(listed), len(want))
		}
	}
	for u := range e.mc.ListIncompleteUploads(ctx, e.bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		t.Errorf("incomplete upload left: %s", u.Key)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestMirrorIntoS3(t *testing.T) {
	for _, kind := range testserver.Kinds {
		for _, curated := range []bool{false, true} {
			name := string(kind) + "/verbatim"
			if curated {
				name = string(kind) + "/curated"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel() // its own upstream and bucket
				up := newUpstream(t, largeConfig(), nil)
				e := newS3Target(t, kind)
				filters := []string{"arch=amd64", "release~(jammy|noble)"}
				opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}}
				var kr *sign.Keyring
				if curated {
					opts.Signer = loadSigner(t, "other-signing-key.asc")
					var pub bytes.Buffer
					if err := opts.Signer.WritePublicKeyring(&pub); err != nil {
						t.Fatal(err)
					}
					var err error
					if kr, err = sign.ReadKeyring(&pub); err != nil {
						t.Fatal(err)
					}
				}
				rep := run(t, up, e.dst, opts)
				if rep.Fetched == 0 {
					t.Fatal("nothing fetched")
				}
				checkBucket(t, e, up, selected(t, up.stream, filters...), kr)

				// Up to date: no content transferred, no metadata rewritten, and a fixed handful
				// of requests, not one per object: take the lock, read the state, list the
				// target once (one page here), delete the lock. (Leftover uploads are looked for
				// only when there is work to do or a lock was taken over from a killed run.)
				e.counter.n.Store(0)
				e.counter.mu.Lock()
				clear(e.counter.byOp)
				e.counter.mu.Unlock()
				up.stream.ResetRequests()
				rep = run(t, up, e.dst, opts)
				if n := up.stream.ContentRequests(); n != 0 || rep.Fetched+rep.Copied != 0 || len(rep.MetadataWritten) != 0 {
					t.Errorf("up-to-date run: %d upstream content requests, fetched %d, copied %d, metadata %v", n, rep.Fetched, rep.Copied, rep.MetadataWritten)
				}
				if n := e.counter.n.Load(); n > 5 || e.counter.byOp["GET list"] != 1 || e.counter.byOp["GET multipart"] != 0 {
					t.Errorf("up-to-date run sent %d S3 requests (%v), want at most 5, one listing of objects, none of uploads", n, e.counter.byOp)
				}
				t.Logf("up-to-date run: %d S3 requests %v", e.counter.n.Load(), e.counter.byOp)
			})
		}
	}
}

// TestS3FlippedByteInMultipartFile: the damaged file never becomes an object, no upload is left
// incomplete, the metadata is unchanged, and the message names the path.
func TestS3FlippedByteInMultipartFile(t *testing.T) {
	up := newUpstream(t, largeConfig(), nil)
	e := newS3Target(t, testserver.KindMinIO)
	filters := mustParse(t, "release=noble", "arch=arm64")
	var victim string
	for _, it := range up.stream.Items {
		if strings.HasPrefix(it.Path, "noble/arm64/20250718/squashfs") && it.Name == "squashfs" {
			victim = it.Path
		}
	}
	if err := up.stream.Corrupt(victim); err != nil {
		t.Fatal(err)
	}
	_, err := sync.Run(t.Context(), up.src, e.dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1, Verification: sync.Verification{Keyring: up.keyring}}})
	if !errors.Is(err, store.ErrChecksum) || !strings.Contains(err.Error(), victim) {
		t.Fatalf("want a checksum error naming %s, got %v", victim, err)
	}
	ctx := t.Context()
	if _, err := e.mc.StatObject(ctx, e.bucket, "maas/stable/"+victim, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		t.Errorf("damaged object visible: %v", err)
	}
	for obj := range e.mc.ListObjects(ctx, e.bucket, minio.ListObjectsOptions{Prefix: "maas/stable/streams/", Recursive: true}) {
		t.Errorf("metadata published after a failed run: %s", obj.Key)
	}
	for u := range e.mc.ListIncompleteUploads(ctx, e.bucket, "", true) {
		t.Errorf("incomplete upload left: %s %v", u.Key, u.Err)
	}
	// Repaired upstream: the next run completes and fetches only the damaged file.
	up.stream.SetOverride(victim, nil)
	rep := run(t, up, e.dst, sync.Options{Selection: sync.Selection{Filters: filters, Max: 1}})
	if rep.Fetched != 1 {
		t.Errorf("repaired run fetched %d files, want 1", rep.Fetched)
	}
	checkBucket(t, e, up, selected(t, up.stream, "release=noble", "arch=arm64"), nil)
}

// TestRacingTakeoversOnS3: runs that find the same expired lease at the same moment race to take
// it over on a real S3 server; in every trial exactly one wins, the others are refused naming
// the winner. (Taking over by read, compare, delete, create let two win about one trial in four.)
func TestRacingTakeoversOnS3(t *testing.T) {
	const trials, racers = 20, 10
	targettest.Each(t, targettest.S3, targettest.Options{Parallel: true}, func(t *testing.T, kind targettest.Kind) {
		e := newS3Target(t, testserver.Kind(kind))
		ctx := t.Context()
		var perTrial []int
		for trial := range trials {
			dead := sync.Lease{ID: fmt.Sprintf("dead-%d", trial), Host: "gone", PID: 1, Started: time.Now().Add(-time.Hour), Expires: time.Now().Add(-time.Minute)}
			data, _ := json.Marshal(dead)
			if _, err := store.PutBytes(ctx, e.dst, sync.LockKey, data, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			var wg gosync.WaitGroup
			var mu gosync.Mutex
			var won []*sync.TargetLock
			start := make(chan struct{})
			for range racers {
				wg.Go(func() {
					<-start
					l, _, err := sync.AcquireLock(ctx, e.dst, sync.LockOptions{})
					switch {
					case err == nil:
						mu.Lock()
						won = append(won, l)
						mu.Unlock()
					case !errors.As(err, new(*sync.LockedError)):
						t.Errorf("trial %d: racing AcquireLock: %v", trial, err)
					}
				})
			}
			close(start)
			wg.Wait()
			for _, l := range won {
				l.Release()
			}
			perTrial = append(perTrial, len(won))
			if len(won) != 1 {
				t.Errorf("trial %d: %d of %d racing runs took over the expired lease, want exactly 1", trial, len(won), racers)
			}
		}
		t.Logf("%s: %d trials of %d racing takeovers of an expired lease; winners per trial %v", kind, trials, racers, perTrial)
	})
}
