package sync_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// gatedSource holds every read of a file larger than after at that offset until gate is
// closed: a run writing such a file keeps its write (a multipart upload, a temporary file) in
// flight meanwhile. It hides the source's ranged reads, so each file is one stream.
type gatedSource struct {
	store.Source
	after int64
	gate  chan struct{}
}

func (g *gatedSource) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	rc, err := g.Source.Open(ctx, key, offset)
	if err != nil {
		return nil, err
	}
	return &gatedReader{ReadCloser: rc, ctx: ctx, off: offset, g: g}, nil
}

type gatedReader struct {
	io.ReadCloser
	ctx context.Context
	off int64
	g   *gatedSource
}

func (r *gatedReader) Read(b []byte) (int, error) {
	if r.off >= r.g.after {
		select {
		case <-r.g.gate:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	} else if rest := r.g.after - r.off; int64(len(b)) > rest {
		b = b[:rest]
	}
	n, err := r.ReadCloser.Read(b)
	r.off += int64(n)
	return n, err
}

// nestedTrials is how many times TestNestedTargetsLeaveEachOtherAlone runs each kind.
const nestedTrials = 4

// TestNestedTargetsLeaveEachOtherAlone: a target nested inside another (s3://b/m/lxd inside
// s3://b/m, DIR/lxd inside DIR), each mirroring its own upstream, run at the same time: the
// outer run, which has work to do and so cleans up leftovers, runs whole while the inner run
// holds a large file's write in flight (a multipart upload, a temporary file). The inner run
// must succeed and hold every byte upstream has; the outer too. Before, the outer run aborted
// the inner run's upload (deleted its temporary file), and the inner run failed: every trial.
func TestNestedTargetsLeaveEachOtherAlone(t *testing.T) {
	outerUp := newUpstream(t, smallConfig(), nil)
	innerCfg := smallConfig()
	innerCfg.Seed = 2
	innerCfg.Releases = []string{"noble"}
	innerCfg.SquashfsSize = 12<<20 + 7 // multipart with 5 MiB parts
	innerUp := newUpstream(t, innerCfg, nil)
	filters := []string{"arch=amd64"}
	for _, kind := range targettest.Durable {
		t.Run(string(kind), func(t *testing.T) {
			bad := 0
			for trial := range nestedTrials {
				outer, inner, inFlight := nestedPair(t, kind)
				gated := &gatedSource{Source: innerUp.src, after: 7 << 20, gate: make(chan struct{})}
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
				innerDone := make(chan error, 1)
				go func() {
					_, err := sync.Run(ctx, gated, inner, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1,
						Verification: sync.Verification{Keyring: innerUp.keyring}}, Tuning: sync.Tuning{Concurrency: 2}})
					innerDone <- err
				}()
				deadline := time.Now().Add(time.Minute)
				for !inFlight() {
					if time.Now().After(deadline) {
						t.Fatalf("trial %d: the inner run has no write in flight after a minute", trial)
					}
					time.Sleep(20 * time.Millisecond)
				}
				_, oerr := sync.Run(ctx, outerUp.src, outer, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1,
					Verification: sync.Verification{Keyring: outerUp.keyring}}})
				close(gated.gate)
				ierr := <-innerDone
				cancel()
				ok := true
				if oerr != nil {
					t.Errorf("trial %d: the outer run: %v", trial, oerr)
					ok = false
				}
				if ierr != nil {
					t.Errorf("trial %d: the inner run: %v", trial, ierr)
					ok = false
				}
				if !holdsSelection(t, inner, innerUp, filters) || !holdsSelection(t, outer, outerUp, filters) {
					ok = false
				}
				if !ok {
					bad++
				}
			}
			t.Logf("%s: %d of %d trials went wrong", kind, bad, nestedTrials)
		})
	}
}

// nestedPair makes an outer target and an inner one nested in it (at lxd/), and a function that
// tells whether the inner one has a write in flight.
func nestedPair(t *testing.T, kind targettest.Kind) (outer, inner store.Target, inFlight func() bool) {
	t.Helper()
	if kind == targettest.Directory {
		dir := t.TempDir()
		o, err := dirstore.New(dir, dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		i, err := dirstore.New(filepath.Join(dir, "lxd"), dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return o, i, func() bool {
			found := false
			filepath.WalkDir(filepath.Join(dir, "lxd"), func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), dirstore.TempPrefix) && !strings.Contains(p, "/.ssmirror/") {
					if fi, err := d.Info(); err == nil && fi.Size() > 0 {
						found = true
					}
				}
				return nil
			})
			return found
		}
	}
	srv := testserver.Shared(t, testserver.Kind(kind))
	opts := s3store.Options{PartSize: s3store.MinPartSize, PartConcurrency: 2}
	client := targettest.Client(t, srv, &opts)
	bucket := srv.NewBucket(t, t.Name())
	return s3store.New(client, bucket, "m/", opts), s3store.New(client, bucket, "m/lxd/", opts), func() bool {
		out, err := client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range out.Uploads {
			if strings.HasPrefix(aws.ToString(u.Key), "m/lxd/") {
				return true
			}
		}
		return false
	}
}

// holdsSelection reports (and complains) whether dst holds every selected item of up with its
// size and sha256, read back.
func holdsSelection(t *testing.T, dst store.Target, up *upstream, filters []string) bool {
	t.Helper()
	sums := map[string]string{}
	for _, it := range up.stream.Items {
		sums[it.Path] = it.SHA256
	}
	ok := true
	for _, p := range selected(t, up.stream, filters...) {
		rc, err := dst.Open(t.Context(), p, 0)
		if err != nil {
			t.Errorf("%s: %s: %v", store.Describe(dst), p, err)
			ok = false
			continue
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if got := hex.EncodeToString(h.Sum(nil)); err != nil || got != sums[p] {
			t.Errorf("%s: %s has sha256 %s (%v), upstream's is %s", store.Describe(dst), p, got, err, sums[p])
			ok = false
		}
	}
	return ok
}

// TestForeignUploadAtBucketRootSurvives: a mirror at a bucket's root (no prefix) leaves another
// application's incomplete multipart upload in the bucket alone, and one its own killed run
// left at one of its keys is aborted. Before, every upload in the bucket was aborted.
func TestForeignUploadAtBucketRootSurvives(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	filters := []string{"arch=amd64"}
	for _, kind := range testserver.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := testserver.Shared(t, kind)
			opts := s3store.Options{PartSize: s3store.MinPartSize}
			client := targettest.Client(t, srv, &opts)
			bucket := srv.NewBucket(t, t.Name())
			dst := s3store.New(client, bucket, "", opts)
			core := &minio.Core{Client: srv.MinioClient(t)}
			own := selected(t, up.stream, filters...)[0]
			for _, key := range []string{"backups/db.tar", own} {
				if _, err := core.NewMultipartUpload(t.Context(), bucket, key, minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1,
				Verification: sync.Verification{Keyring: up.keyring}}}); err != nil {
				t.Fatal(err)
			}
			left := map[string]bool{}
			for u := range core.ListIncompleteUploads(t.Context(), bucket, "", true) {
				if u.Err != nil {
					t.Fatal(u.Err)
				}
				left[u.Key] = true
			}
			if !left["backups/db.tar"] {
				t.Error("the other application's upload at backups/db.tar was aborted")
			}
			if left[own] {
				t.Errorf("the upload at the mirror's own %s was left", own)
			}
		})
	}
}

// TestNestedTargetOverlapRefused: a target that would write under another target nested in it
// (a directory of its own files holding another target's .ssmirror/) refuses to run, saying so,
// and writes nothing; a dry run says so too.
func TestNestedTargetOverlapRefused(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}}
	first := selected(t, up.stream, "arch=amd64")[0]
	sub := path.Dir(path.Dir(first))
	inner, err := dirstore.New(filepath.Join(dir, filepath.FromSlash(sub)), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, _, err := sync.AcquireLock(t.Context(), inner, sync.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	for _, dry := range []bool{true, false} {
		opts.DryRun = dry
		_, err = sync.Run(t.Context(), up.src, dst, opts)
		var ne *sync.NestedTargetError
		if !errors.As(err, &ne) || ne.Nested != sub+"/" || !strings.Contains(err.Error(), "refusing") {
			t.Fatalf("a run over a nested target (dry run %v): %v, want a NestedTargetError for %s/", dry, err, sub)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "streams")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused run published metadata: %v", err)
	}
}
