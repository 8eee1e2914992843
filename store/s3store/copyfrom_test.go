package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/faultproxy"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/store/storetest"
)

// copyPair returns two stores in two new buckets of e's server, under different prefixes, each
// with a client of its own built the way the command builds one per target (same endpoint,
// region and keys); multipart lowers the destination's copy threshold so that copies of more
// than testPartSize bytes go through UploadPartCopy.
func copyPair(t *testing.T, e *env, multipart bool) (dst, src *s3store.Store) {
	t.Helper()
	dopts, sopts := e.opts, e.opts
	dst = s3store.New(targettest.Client(t, e.srv, &dopts), e.srv.NewBucket(t, "dst-"+t.Name()), "mirror/", dopts)
	src = s3store.New(targettest.Client(t, e.srv, &sopts), e.srv.NewBucket(t, "src-"+t.Name()), "site/a/", sopts)
	if multipart {
		s3store.SetCopyLimits(dst, testPartSize, testPartSize)
	}
	return dst, src
}

// TestCopierFromConformance runs the CopierFrom contract between two buckets of one MinIO and of
// one versitygw: with CopyObject, and with UploadPartCopy parts for the large object.
func TestCopierFromConformance(t *testing.T) {
	old := storetest.CopyLargeSize
	storetest.CopyLargeSize = 2*testPartSize + 1234 // three parts of a multipart copy
	t.Cleanup(func() { storetest.CopyLargeSize = old })
	forEachServerParallel(t, func(t *testing.T, e *env) {
		for _, multipart := range []bool{false, true} {
			name := "CopyObject"
			if multipart {
				name = "UploadPartCopy"
			}
			t.Run(name, func(t *testing.T) {
				storetest.RunCopierFrom(t, func(t *testing.T) (store.Target, store.Target) { return copyPair(t, e, multipart) })
			})
		}
	})
}

// TestCopyFromMovesNoContent: a copy between two buckets of one MinIO sends the object's bytes
// neither to nor from the client. Every request of the copy goes through a counting proxy; the
// bodies that pass it (requests and responses) are a few KB of XML for an object of many MiB,
// both with one CopyObject and with UploadPartCopy parts. A copy that read the source and
// uploaded it would move twice the object through the proxy.
func TestCopyFromMovesNoContent(t *testing.T) {
	e := newParallelEnv(t, testserver.KindMinIO)
	p, err := faultproxy.New(e.srv.Endpoint, faultproxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(p)
	t.Cleanup(proxy.Close)
	const size = 24 << 20
	data := randBytes(71, size)
	for _, multipart := range []bool{false, true} {
		name := "CopyObject"
		if multipart {
			name = "UploadPartCopy"
		}
		t.Run(name, func(t *testing.T) {
			// The source is written directly; the copy's stores reach the server through the
			// proxy (both, so that they name the same endpoint).
			direct := e.s3c(t)
			if _, err := direct.Put(t.Context(), "big", bytes.NewReader(data), store.PutOptions{Size: size, SHA256: sha(data)}); err != nil {
				t.Fatal(err)
			}
			opts := e.opts
			opts.Endpoint = proxy.URL
			client := targettest.Client(t, e.srv, &opts)
			src := s3store.New(client, direct.Bucket(), "mirror/", opts)
			dst := s3store.New(targettest.Client(t, e.srv, &opts), e.srv.NewBucket(t, "dst"), "other/prefix/", opts)
			if multipart {
				s3store.SetCopyLimits(dst, testPartSize, testPartSize)
			}
			if !dst.CanCopyFrom(src) {
				t.Fatal("CanCopyFrom(a bucket of the same server through the same endpoint) = false")
			}
			before := p.Stats()
			info, err := dst.CopyFrom(t.Context(), "copy/big", src, "big", store.PutOptions{Size: size, SHA256: sha(data)})
			if err != nil {
				t.Fatalf("CopyFrom: %v", err)
			}
			after := p.Stats()
			reqs := after.Requests - before.Requests
			in, out := after.BytesIn-before.BytesIn, after.BytesOut-before.BytesOut
			t.Logf("copy of %d MiB: %d requests, %d body bytes to the server, %d from it", size>>20, reqs, in, out)
			if in+out > 64<<10 {
				t.Errorf("the copy moved %d body bytes through the client (%d out, %d back) for a %d-byte object: want only a few KB of XML", in+out, in, out, size)
			}
			if info.SHA256 != sha(data) || info.Size != size {
				t.Errorf("CopyFrom = %+v, want size %d sha256 %s", info, size, sha(data))
			}
			obj, err := e.mc.GetObject(t.Context(), dst.Bucket(), "other/prefix/copy/big", minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Close()
			var got bytes.Buffer
			if _, err := got.ReadFrom(obj); err != nil {
				t.Fatalf("reading the copy back: %v", err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Error("the copy's content differs from the source's")
			}
		})
	}
}

// TestCanCopyFromOtherServer: two MinIO servers are two services: neither store can copy from the
// other on the server, and CopyFrom refuses without writing anything. A client of the same
// server for another region, or with other keys, is refused as well.
func TestCanCopyFromOtherServer(t *testing.T) {
	e := newParallelEnv(t, testserver.KindMinIO)
	other := testserver.MinIO(t)
	a := e.s3c(t)
	var bopts s3store.Options
	b := s3store.New(targettest.Client(t, other, &bopts), other.NewBucket(t, "other"), "mirror/", bopts)
	data := randBytes(72, 1000)
	for _, s := range []*s3store.Store{a, b} {
		if _, err := s.Put(t.Context(), "x", bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: sha(data)}); err != nil {
			t.Fatal(err)
		}
	}
	if a.CanCopyFrom(b) || b.CanCopyFrom(a) {
		t.Errorf("CanCopyFrom between two MinIO servers = %v, %v; want false", a.CanCopyFrom(b), b.CanCopyFrom(a))
	}
	for _, tc := range []struct {
		name     string
		dst, src *s3store.Store
	}{{"AFromB", a, b}, {"BFromA", b, a}} {
		_, err := tc.dst.CopyFrom(t.Context(), "copied", tc.src, "x", store.PutOptions{Size: int64(len(data)), SHA256: sha(data)})
		if !errors.Is(err, s3store.ErrOtherService) {
			t.Errorf("%s: CopyFrom = %v, want ErrOtherService", tc.name, err)
		} else if !strings.Contains(err.Error(), tc.src.Describe()) || !strings.Contains(err.Error(), tc.dst.Bucket()) {
			t.Errorf("%s: error %q does not name both buckets", tc.name, err)
		}
		if _, err := tc.dst.Stat(t.Context(), "copied"); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("%s: after a refused copy, Stat = %v, want ErrNotExist", tc.name, err)
		}
	}

	// The same server, another region or other keys: not the same service and principal.
	ropts := e.opts
	ropts.Region = "eu-west-3"
	regional := s3store.New(targettest.Client(t, e.srv, &ropts), e.srv.NewBucket(t, "regional"), "", ropts)
	if regional.CanCopyFrom(a) || a.CanCopyFrom(regional) {
		t.Error("CanCopyFrom across regions of one endpoint = true, want false")
	}
	otherKeys := s3store.New(targettest.Client(t, other, &s3store.Options{Endpoint: e.srv.Endpoint, Region: e.srv.Region}), a.Bucket(), "mirror/", e.opts)
	if otherKeys.CanCopyFrom(a) || a.CanCopyFrom(otherKeys) {
		t.Error("CanCopyFrom with other keys = true, want false")
	}
}

// changingClient runs hook once, before the first copy request (one with x-amz-copy-source) it
// sends: the moment between CopyFrom's check of the source and the copy.
type changingClient struct {
	inner s3.HTTPClient
	once  sync.Once
	hook  func()
}

func (c *changingClient) Do(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Amz-Copy-Source") != "" {
		c.once.Do(c.hook)
	}
	return c.inner.Do(r)
}

// TestCopyFromSourceChanged: a source replaced or deleted after CopyFrom checked it, before the
// copy request, fails the copy (store.ErrPrecondition, or store.ErrNotExist) and leaves nothing
// at the destination key: no object, no incomplete upload; with CopyObject and with
// UploadPartCopy parts.
func TestCopyFromSourceChanged(t *testing.T) {
	forEachServerParallel(t, func(t *testing.T, e *env) {
		data, other := randBytes(73, 2*testPartSize+99), randBytes(74, 2*testPartSize+99)
		for _, multipart := range []bool{false, true} {
			for _, change := range []string{"Replaced", "Deleted"} {
				name := "CopyObject/" + change
				if multipart {
					name = "UploadPartCopy/" + change
				}
				t.Run(name, func(t *testing.T) {
					ctx := t.Context()
					dst, src := copyPair(t, e, multipart)
					if _, err := src.Put(ctx, "obj", bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: sha(data)}); err != nil {
						t.Fatal(err)
					}
					hook := func() {
						var err error
						if change == "Deleted" {
							err = src.Delete(ctx, "obj")
						} else {
							_, err = src.Put(ctx, "obj", bytes.NewReader(other), store.PutOptions{Size: int64(len(other)), SHA256: sha(other)})
						}
						if err != nil {
							t.Errorf("changing the source: %v", err)
						}
					}
					cc := &changingClient{hook: hook}
					hooked := s3.New(targettest.Client(t, e.srv, &s3store.Options{}).Options(), func(o *s3.Options) {
						cc.inner = o.HTTPClient
						o.HTTPClient = cc
					})
					hdst := s3store.New(hooked, dst.Bucket(), "mirror/", e.opts)
					if multipart {
						s3store.SetCopyLimits(hdst, testPartSize, testPartSize)
					}
					_, err := hdst.CopyFrom(ctx, "copy", src, "obj", store.PutOptions{Size: int64(len(data)), SHA256: sha(data)})
					switch {
					case err == nil:
						t.Fatal("CopyFrom of a source changed after its check succeeded")
					case !errors.Is(err, store.ErrPrecondition) && !errors.Is(err, store.ErrNotExist):
						t.Errorf("CopyFrom of a changed source = %v, want ErrPrecondition or ErrNotExist", err)
					case !strings.Contains(err.Error(), src.Bucket()) || !strings.Contains(err.Error(), dst.Bucket()):
						t.Errorf("error %q does not name both buckets", err)
					}
					var se *store.Error
					if !errors.As(err, &se) || se.Key != "copy" {
						t.Errorf("error %v is not a *store.Error for the destination key", err)
					}
					_, serr := e.mc.StatObject(ctx, dst.Bucket(), objectKey("copy"), minio.StatObjectOptions{})
					if minio.ToErrorResponse(serr).Code != minio.NoSuchKey {
						t.Errorf("StatObject(copy) after a failed copy = %v, want NoSuchKey", serr)
					}
					checkNoUploads(t, e, dst)
				})
			}
		}
	})
}

// TestCopyFromCancelledMidCopy: a context cancelled while the parts of a multipart copy are being
// copied stops the copy and aborts its upload: no object, no incomplete upload.
func TestCopyFromCancelledMidCopy(t *testing.T) {
	forEachServerParallel(t, func(t *testing.T, e *env) {
		data := randBytes(75, 4*testPartSize+7)
		dst, src := copyPair(t, e, true)
		if _, err := src.Put(t.Context(), "obj", bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: sha(data)}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		cc := &changingClient{hook: cancel}
		hooked := s3.New(targettest.Client(t, e.srv, &s3store.Options{}).Options(), func(o *s3.Options) {
			cc.inner = o.HTTPClient
			o.HTTPClient = cc
		})
		hdst := s3store.New(hooked, dst.Bucket(), "mirror/", e.opts)
		s3store.SetCopyLimits(hdst, testPartSize, testPartSize)
		_, err := hdst.CopyFrom(ctx, "copy", src, "obj", store.PutOptions{Size: int64(len(data)), SHA256: sha(data)})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("CopyFrom cancelled during the parts = %v, want context.Canceled", err)
		}
		checkAbsent(t, e, dst, "copy")
	})
}
