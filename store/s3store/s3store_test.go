package s3store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(testserver.RunMain(m)) }

// testPartSize is the smallest part S3 allows, so that objects of a few MiB go multipart.
const testPartSize = s3store.MinPartSize

// env is one S3 server with a client built by NewClient the way the CLI builds it.
type env struct {
	kind testserver.Kind
	srv  *testserver.Server
	mc   *minio.Client
	opts s3store.Options
	s3c  func(t *testing.T) *s3store.Store
}

func newEnv(t *testing.T, kind testserver.Kind) *env {
	t.Helper()
	srv := testserver.Shared(t, kind)
	srv.IsolateAWSEnv(t)
	opts := s3store.Options{
		Endpoint:        srv.Endpoint,
		Region:          srv.Region,
		PartSize:        testPartSize,
		PartConcurrency: 3,
	}
	client, err := s3store.NewClient(t.Context(), opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	e := &env{kind: kind, srv: srv, mc: srv.MinioClient(t), opts: opts}
	e.s3c = func(t *testing.T) *s3store.Store {
		return s3store.New(client, srv.NewBucket(t, t.Name()), "mirror/", opts)
	}
	return e
}

// newParallelEnv is newEnv for parallel tests: its client signs with the server's keys given
// explicitly (targettest.Client) instead of through the environment, which t.Setenv would set.
func newParallelEnv(t *testing.T, kind testserver.Kind) *env {
	t.Helper()
	srv := testserver.Shared(t, kind)
	opts := s3store.Options{PartSize: testPartSize, PartConcurrency: 3}
	client := targettest.Client(t, srv, &opts)
	e := &env{kind: kind, srv: srv, mc: srv.MinioClient(t), opts: opts}
	e.s3c = func(t *testing.T) *s3store.Store {
		return s3store.New(client, srv.NewBucket(t, t.Name()), "mirror/", opts)
	}
	return e
}

// forEachServer runs fn against MinIO and versitygw.
func forEachServer(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, kind := range testserver.Kinds {
		t.Run(string(kind), func(t *testing.T) { fn(t, newEnv(t, kind)) })
	}
}

// forEachServerParallel is forEachServer with the servers' subtests in parallel, for tests that
// use their own buckets and change nothing process-wide (no t.Setenv: e's client is explicit).
func forEachServerParallel(t *testing.T, fn func(t *testing.T, e *env)) {
	targettest.Each(t, targettest.S3, targettest.Options{Parallel: true}, func(t *testing.T, kind targettest.Kind) {
		fn(t, newParallelEnv(t, testserver.Kind(kind)))
	})
}

func TestConformance(t *testing.T) {
	old := storetest.LargeSize
	storetest.LargeSize = 24 << 20 // five parts of testPartSize
	t.Cleanup(func() { storetest.LargeSize = old })
	forEachServerParallel(t, func(t *testing.T, e *env) {
		storetest.Run(t, func(t *testing.T) store.Target { return e.s3c(t) })
	})
}

// TestConformanceChunks runs the conformance suite with every Put given a store.ChunkReader (the
// fan-out's input): the parts are lists of the reader's chunks (odd-sized, so that chunks
// straddle parts), every chunk is released before Put returns, and none is sent after it was
// released (storetest.Chunked spoils a released chunk's bytes).
func TestConformanceChunks(t *testing.T) {
	old := storetest.LargeSize
	storetest.LargeSize = 24 << 20 // five parts of testPartSize
	t.Cleanup(func() { storetest.LargeSize = old })
	forEachServerParallel(t, func(t *testing.T, e *env) {
		storetest.Run(t, func(t *testing.T) store.Target { return storetest.Chunked(t, e.s3c(t), 100_003) })
	})
}

func TestSourceConformance(t *testing.T) {
	forEachServerParallel(t, func(t *testing.T, e *env) {
		storetest.RunSource(t, func(t *testing.T) store.Source { return storetest.Seed(t, e.s3c(t)) })
	})
}

// TestConformanceChecksumModes runs the conformance suite with each upload checksum other than
// the default (which TestConformance uses).
func TestConformanceChecksumModes(t *testing.T) {
	old := storetest.LargeSize
	storetest.LargeSize = 24 << 20
	t.Cleanup(func() { storetest.LargeSize = old })
	forEachServerParallel(t, func(t *testing.T, e *env) {
		for _, mode := range []s3store.Checksum{s3store.ChecksumCRC64NVME, s3store.ChecksumMD5, s3store.ChecksumNone} {
			t.Run(string(mode), func(t *testing.T) {
				t.Parallel() // its own client and buckets
				opts := e.opts
				opts.Checksum = mode
				client := targettest.Client(t, e.srv, &opts)
				storetest.Run(t, func(t *testing.T) store.Target {
					return s3store.New(client, e.srv.NewBucket(t, t.Name()), "mirror/", opts)
				})
			})
		}
	})
}

func sha(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// objectKey is where the store under "mirror/" puts key.
func objectKey(key string) string { return "mirror/" + key }

// checkAbsent checks with minio-go that neither an object nor an incomplete upload exists at key.
func checkAbsent(t *testing.T, e *env, s *s3store.Store, key string) {
	t.Helper()
	ctx := t.Context()
	_, err := e.mc.StatObject(ctx, s.Bucket(), objectKey(key), minio.StatObjectOptions{})
	if minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		t.Errorf("StatObject(%s) after a failed put = %v, want NoSuchKey", key, err)
	}
	checkNoUploads(t, e, s)
}

func checkNoUploads(t *testing.T, e *env, s *s3store.Store) {
	t.Helper()
	for u := range e.mc.ListIncompleteUploads(t.Context(), s.Bucket(), "", true) {
		if u.Err != nil {
			t.Fatalf("ListIncompleteUploads: %v", u.Err)
		}
		t.Errorf("incomplete upload left behind: key %s, id %s", u.Key, u.UploadID)
	}
}

// TestMetadata checks with minio-go what Put records: x-amz-meta-sha256 (single put, multipart
// with and without an expected sha256), Content-Type and Cache-Control, and the key prefix.
func TestMetadata(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		client, err := s3store.NewClient(t.Context(), e.opts)
		if err != nil {
			t.Fatal(err)
		}
		opts := e.opts
		bucket := e.srv.NewBucket(t, "metadata")
		s := s3store.New(client, bucket, "/mirror", opts)
		if got, want := s.Describe(), "s3://"+bucket+"/mirror"; got != want {
			t.Errorf("Describe() = %q, want %q", got, want)
		}
		small := []byte(`{"format":"index:1.0"}`)
		large := randBytes(1, 2*testPartSize+123)
		cases := []struct {
			key       string
			data      []byte
			opts      store.PutOptions
			wantCache string
		}{
			{"streams/v1/index.json", small, store.PutOptions{Size: int64(len(small)), ContentType: "application/json", CacheControl: "max-age=60"}, "max-age=60"},
			{"streams/v1/index.sjson", small, store.PutOptions{Size: -1, CacheControl: "no-cache"}, "no-cache"},
			{"streams/v1/products.json", small, store.PutOptions{Size: int64(len(small))}, ""},
			{"noble/amd64/1/squashfs", large, store.PutOptions{Size: int64(len(large)), SHA256: sha(large), CacheControl: "max-age=86400, immutable"}, "max-age=86400, immutable"},
			{"noble/amd64/2/squashfs", large, store.PutOptions{Size: int64(len(large)), ContentType: "application/octet-stream"}, ""},
			{"noble/amd64/3/squashfs", large, store.PutOptions{Size: -1, CacheControl: "max-age=86400, immutable"}, "max-age=86400, immutable"},
		}
		for _, tc := range cases {
			info, err := s.Put(t.Context(), tc.key, bytes.NewReader(tc.data), tc.opts)
			if err != nil {
				t.Fatalf("Put(%s): %v", tc.key, err)
			}
			if info.SHA256 != sha(tc.data) || info.Size != int64(len(tc.data)) {
				t.Errorf("Put(%s) = %+v, want size %d sha256 %s", tc.key, info, len(tc.data), sha(tc.data))
			}
			oi, err := e.mc.StatObject(t.Context(), bucket, "mirror/"+tc.key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatalf("minio StatObject(mirror/%s): %v", tc.key, err)
			}
			if got := oi.UserMetadata["Sha256"]; got != sha(tc.data) {
				t.Errorf("%s: x-amz-meta-sha256 = %q, want %q (metadata %v)", tc.key, got, sha(tc.data), oi.UserMetadata)
			}
			if oi.Size != int64(len(tc.data)) {
				t.Errorf("%s: size %d, want %d", tc.key, oi.Size, len(tc.data))
			}
			if tc.opts.ContentType != "" && oi.ContentType != tc.opts.ContentType {
				t.Errorf("%s: Content-Type %q, want %q", tc.key, oi.ContentType, tc.opts.ContentType)
			}
			if got := oi.Metadata.Get("Cache-Control"); got != tc.wantCache {
				t.Errorf("%s: Cache-Control %q, want %q", tc.key, got, tc.wantCache)
			}
			st, err := s.Stat(t.Context(), tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if st.SHA256 != sha(tc.data) {
				t.Errorf("Stat(%s).SHA256 = %q, want %q", tc.key, st.SHA256, sha(tc.data))
			}
		}
		// An object written by someone else has no recorded sha256: Stat says "".
		if _, err := e.mc.PutObject(t.Context(), bucket, "mirror/foreign", bytes.NewReader(small), int64(len(small)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if st, err := s.Stat(t.Context(), "foreign"); err != nil || st.SHA256 != "" {
			t.Errorf("Stat(foreign) = %+v, %v; want no sha256", st, err)
		}
	})
}

// flipReader yields data with the byte at offset at flipped.
type flipReader struct {
	data []byte
	at   int
	off  int
}

func (f *flipReader) Read(p []byte) (int, error) {
	if f.off >= len(f.data) {
		return 0, io.EOF
	}
	n := copy(p, f.data[f.off:])
	if f.at >= f.off && f.at < f.off+n {
		p[f.at-f.off] ^= 0x01
	}
	f.off += n
	return n, nil
}

// TestFlippedByte: one corrupted byte (in the last part, in the first part, or in a small object)
// leaves no object and no incomplete multipart upload.
func TestFlippedByte(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		s := e.s3c(t)
		large := randBytes(2, 3*testPartSize+4567)
		small := randBytes(3, 1000)
		cases := []struct {
			name string
			data []byte
			at   int
			size int64
		}{
			{"LastPart", large, len(large) - 10, int64(len(large))},
			{"FirstPart", large, 17, int64(len(large))},
			{"SizeUnknown", large, len(large) / 2, -1},
			{"Small", small, 500, int64(len(small))},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				key := "flip/" + tc.name
				_, err := s.Put(t.Context(), key, &flipReader{data: tc.data, at: tc.at}, store.PutOptions{Size: tc.size, SHA256: sha(tc.data)})
				if !errors.Is(err, store.ErrChecksum) {
					t.Fatalf("Put with a flipped byte = %v, want ErrChecksum", err)
				}
				checkAbsent(t, e, s, key)
			})
		}
	})
}

// cancelAfter cancels once more than n bytes have been read, and goes on yielding data.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n < 0 {
		c.cancel()
	}
	return n, err
}

// TestCancelMidUpload: cancelling the context while parts are being uploaded aborts the
// multipart upload: nothing visible, no incomplete upload.
func TestCancelMidUpload(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		s := e.s3c(t)
		data := randBytes(4, 6*testPartSize)
		for _, after := range []int{testPartSize / 2, 2*testPartSize + 1, 5*testPartSize + 7} {
			ctx, cancel := context.WithCancel(t.Context())
			r := &cancelAfter{r: bytes.NewReader(data), n: after, cancel: cancel}
			_, err := s.Put(ctx, "cancelled", r, store.PutOptions{Size: int64(len(data)), SHA256: sha(data)})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Put cancelled after %d bytes = %v, want context.Canceled", after, err)
			}
			checkAbsent(t, e, s, "cancelled")
		}
	})
}

// TestCleanLeftovers leaves uploads behind (as a killed run would) and cleans them.
func TestCleanLeftovers(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		s := e.s3c(t)
		core := &minio.Core{Client: e.mc}
		ctx := t.Context()
		for _, key := range []string{"mirror/a/left", "mirror/b/left", "elsewhere/left"} {
			id, err := core.NewMultipartUpload(ctx, s.Bucket(), key, minio.PutObjectOptions{})
			if err != nil {
				t.Fatalf("NewMultipartUpload(%s): %v", key, err)
			}
			part := randBytes(5, 1000)
			if _, err := core.PutObjectPart(ctx, s.Bucket(), key, id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
				t.Fatalf("PutObjectPart(%s): %v", key, err)
			}
		}
		countUploads := func() map[string]int {
			got := map[string]int{}
			for u := range e.mc.ListIncompleteUploads(ctx, s.Bucket(), "", true) {
				if u.Err != nil {
					t.Fatalf("ListIncompleteUploads: %v", u.Err)
				}
				got[u.Key]++
			}
			return got
		}
		if got := countUploads(); len(got) != 3 {
			t.Fatalf("uploads before = %v, want 3", got)
		}
		n, err := s.CleanLeftovers(ctx, store.LeftoverOptions{OlderThan: 24 * time.Hour})
		if err != nil || n != 0 {
			t.Errorf("CleanLeftovers(24h) = %d, %v; want 0 (the uploads are younger)", n, err)
		}
		if got := countUploads(); len(got) != 3 {
			t.Errorf("uploads after aborting none = %v, want 3", got)
		}
		var asked []string
		n, err = s.CleanLeftovers(ctx, store.LeftoverOptions{Mine: func(key string) bool {
			asked = append(asked, key)
			return key == "b/left"
		}})
		if err != nil || n != 1 {
			t.Errorf("CleanLeftovers(only b/left) = %d, %v; want 1", n, err)
		}
		if slices.Sort(asked); !slices.Equal(asked, []string{"a/left", "b/left"}) {
			t.Errorf("Mine was asked about %q, want the keys under the prefix, relative to it", asked)
		}
		n, err = s.CleanLeftovers(ctx, store.LeftoverOptions{})
		if err != nil || n != 1 {
			t.Errorf("CleanLeftovers(everything) = %d, %v; want 1", n, err)
		}
		if got := countUploads(); len(got) != 1 || got["elsewhere/left"] != 1 {
			t.Errorf("uploads after = %v, want only elsewhere/left (outside the prefix)", got)
		}
	})
}

// TestSwapCreateConflict: a lock object created by another client makes a Swap creating it (tag
// "") fail with ErrPrecondition and leaves the object unchanged.
func TestSwapCreateConflict(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		s := e.s3c(t)
		theirs := []byte(`{"holder":"other"}`)
		if _, err := e.mc.PutObject(t.Context(), s.Bucket(), objectKey(".ssmirror/lock"), bytes.NewReader(theirs), int64(len(theirs)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		ours := []byte(`{"holder":"us"}`)
		_, err := s.Swap(t.Context(), ".ssmirror/lock", ours, "", store.PutOptions{})
		if !errors.Is(err, store.ErrPrecondition) {
			t.Fatalf("Swap creating over another client's object = %v, want ErrPrecondition", err)
		}
		got, err := store.ReadAll(t.Context(), s, ".ssmirror/lock", 0)
		if err != nil || !bytes.Equal(got, theirs) {
			t.Errorf("lock after the failed create = %q, %v; want %q", got, err, theirs)
		}
		// A mismatch is refused before anything is sent.
		_, err = s.Swap(t.Context(), "other-lock", ours, "", store.PutOptions{SHA256: "0000000000000000000000000000000000000000000000000000000000000000"})
		if !errors.Is(err, store.ErrChecksum) {
			t.Errorf("Swap with a wrong sha256 = %v, want ErrChecksum", err)
		}
		checkAbsent(t, e, s, "other-lock")
	})
}

// TestCopyRecordsAndChecks: Copy keeps the recorded sha256, can replace Content-Type, and
// refuses a source whose recorded sha256 differs from the expected one.
func TestCopyRecordsAndChecks(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		s := e.s3c(t)
		data := randBytes(6, 5000)
		if _, err := s.Put(t.Context(), "src", bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), ContentType: "text/plain"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Copy(t.Context(), "dst", "src", store.PutOptions{Size: -1, ContentType: "application/x-test"}); err != nil {
			t.Fatalf("Copy: %v", err)
		}
		oi, err := e.mc.StatObject(t.Context(), s.Bucket(), objectKey("dst"), minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if oi.UserMetadata["Sha256"] != sha(data) || oi.ContentType != "application/x-test" {
			t.Errorf("copy has sha256 %q content type %q, want %q and application/x-test", oi.UserMetadata["Sha256"], oi.ContentType, sha(data))
		}
		_, err = s.Copy(t.Context(), "dst2", "src", store.PutOptions{Size: -1, SHA256: sha([]byte("other"))})
		if !errors.Is(err, store.ErrChecksum) {
			t.Errorf("Copy with a different expected sha256 = %v, want ErrChecksum", err)
		}
		checkAbsent(t, e, s, "dst2")
	})
}
