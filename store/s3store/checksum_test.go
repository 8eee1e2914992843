package s3store_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/faultproxy"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
)

// corruptingStore is a store whose requests pass through a proxy that inverts one byte of the
// body of PUT requests (PutObject, UploadPart) at the given rate.
func corruptingStore(t *testing.T, e *env, mode s3store.Checksum, rate float64, seed uint64) (*s3store.Store, *faultproxy.Proxy) {
	t.Helper()
	uploadID := regexp.MustCompile(`uploadId=[^&]*`)
	p, err := faultproxy.New(e.srv.Endpoint, faultproxy.Options{
		Seed:   seed,
		Faults: []faultproxy.Fault{{Kind: faultproxy.FlipRequest, Rate: rate, Methods: []string{http.MethodPut}}},
		// Bucket names and upload ids differ between runs; without them every run draws the
		// same faults.
		Key: func(r *http.Request) string {
			_, path, _ := strings.Cut(strings.TrimPrefix(r.URL.RequestURI(), "/"), "/")
			return r.Method + " " + uploadID.ReplaceAllString(path, "")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	opts := e.opts
	opts.Endpoint = srv.URL
	opts.Checksum = mode
	client, err := s3store.NewClient(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s3store.New(client, e.srv.NewBucket(t, t.Name()), "mirror/", opts), p
}

// readBack reads an object with minio-go, directly from the server (not through the proxy).
func readBack(t *testing.T, e *env, s *s3store.Store, key string) []byte {
	t.Helper()
	obj, err := e.mc.GetObject(t.Context(), s.Bucket(), objectKey(key), minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("reading %s back: %v", key, err)
	}
	return b
}

var verifiedModes = []s3store.Checksum{s3store.ChecksumCRC32C, s3store.ChecksumCRC64NVME, s3store.ChecksumMD5}

// TestUploadChecksumRetries: with half the PUT bodies corrupted on the way, every Put (single
// request, multipart with a known and an unknown size) and Swap succeeds, in every
// checksum mode and on both servers, and what the server holds is exactly what was given:
// corrupted requests were refused by the server and sent again.
func TestUploadChecksumRetries(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		for _, mode := range verifiedModes {
			t.Run(string(mode), func(t *testing.T) {
				s, p := corruptingStore(t, e, mode, 0.2, 11)
				objects := map[string][]byte{
					"small":     randBytes(21, 3000),
					"one-part":  randBytes(22, 2<<20+5),
					"multipart": randBytes(23, 4*testPartSize+777),
					"unknown":   randBytes(24, 3*testPartSize+1),
				}
				for key, data := range objects {
					size := int64(len(data))
					if key == "unknown" {
						size = -1
					}
					info, err := s.Put(t.Context(), key, bytes.NewReader(data), store.PutOptions{Size: size, SHA256: sha(data)})
					if err != nil {
						t.Fatalf("Put %s: %v", key, err)
					}
					if info.SHA256 != sha(data) {
						t.Errorf("Put %s: sha256 %s", key, info.SHA256)
					}
				}
				lock := []byte(`{"holder":"us"}`)
				if _, err := s.Swap(t.Context(), "lock", lock, "", store.PutOptions{}); err != nil {
					t.Fatalf("Swap creating the lock: %v", err)
				}
				objects["lock"] = lock
				for key, data := range objects {
					if got := readBack(t, e, s, key); !bytes.Equal(got, data) {
						t.Errorf("%s: the server holds %d bytes with sha256 %s, want %s", key, len(got), sha(got), sha(data))
					}
				}
				st := p.Stats()
				t.Logf("%s: %d PUT bodies corrupted, %d requests sent again", mode, st.RequestFlips, s.TransitRetries())
				if st.RequestFlips == 0 || s.TransitRetries() != st.RequestFlips {
					t.Errorf("%d bodies corrupted but %d requests sent again", st.RequestFlips, s.TransitRetries())
				}
				checkNoUploads(t, e, s)
			})
		}
	})
}

// TestUploadChecksumGivesUp: when every PUT body is corrupted, Put and Swap fail after
// a bounded number of attempts with ErrTransit and the key in the message, and leave no object
// and no incomplete upload.
func TestUploadChecksumGivesUp(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		for _, mode := range verifiedModes {
			t.Run(string(mode), func(t *testing.T) {
				s, p := corruptingStore(t, e, mode, 1, 12)
				for key, data := range map[string][]byte{"small": randBytes(31, 1000), "multipart": randBytes(32, 2*testPartSize+5)} {
					_, err := s.Put(t.Context(), key, bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: sha(data)})
					if !errors.Is(err, s3store.ErrTransit) || !strings.Contains(err.Error(), objectKey(key)) {
						t.Errorf("Put %s through a proxy corrupting every body = %v, want ErrTransit naming the key", key, err)
					}
					checkAbsent(t, e, s, key)
				}
				_, err := s.Swap(t.Context(), "lock", []byte("x"), "", store.PutOptions{})
				if !errors.Is(err, s3store.ErrTransit) || !strings.Contains(err.Error(), objectKey("lock")) {
					t.Errorf("Swap creating the lock = %v, want ErrTransit naming the key", err)
				}
				checkAbsent(t, e, s, "lock")
				if n := p.Stats().RequestFlips; n > 5*4 { // one request each for two objects, three parts
					t.Errorf("%d requests sent for 5 request bodies: attempts are not bounded", n)
				}
			})
		}
	})
}

// TestUploadChecksumNone: with no checksum, nothing is sent again (the mode for servers that
// check none), and uploads still work.
func TestUploadChecksumNone(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		s, _ := corruptingStore(t, e, s3store.ChecksumNone, 0, 13)
		data := randBytes(41, 2*testPartSize+3)
		if _, err := s.Put(t.Context(), "f", bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: sha(data)}); err != nil {
			t.Fatal(err)
		}
		if got := readBack(t, e, s, "f"); !bytes.Equal(got, data) {
			t.Error("object differs")
		}
		oi, err := e.mc.StatObject(t.Context(), s.Bucket(), objectKey("f"), minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := oi.UserMetadata["Upload-Checksum"]; ok {
			t.Errorf("an upload without a checksum is recorded as verified (%q)", v)
		}
	})
}

// TestCopyVerified: Copy refuses a source that was not uploaded with a verified checksum (here a
// corrupt object written by another client with a correct-looking x-amz-meta-sha256, as an
// unverified upload leaves it), and, on a server that reports the SHA256 of what it copied,
// a source whose bytes differ from its records; neither leaves a copy. A source Put by the store
// is copied.
func TestCopyVerified(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		s := e.s3c(t)
		ctx := t.Context()
		data := randBytes(51, 4000)
		bad := bytes.Clone(data)
		bad[100] ^= 0xff
		if _, err := s.Put(ctx, "good", bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: sha(data)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Copy(ctx, "good-copy", "good", store.PutOptions{Size: int64(len(data)), SHA256: sha(data)}); err != nil {
			t.Fatalf("Copy of a verified upload: %v", err)
		}
		if got := readBack(t, e, s, "good-copy"); !bytes.Equal(got, data) {
			t.Error("the copy differs")
		}
		for name, md := range map[string]map[string]string{
			"unverified": {"sha256": sha(data)},
			"lying":      {"sha256": sha(data), "upload-checksum": "crc32c"},
		} {
			if _, err := e.mc.PutObject(ctx, s.Bucket(), objectKey(name), bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{UserMetadata: md}); err != nil {
				t.Fatal(err)
			}
			_, err := s.Copy(ctx, name+"-copy", name, store.PutOptions{Size: int64(len(data)), SHA256: sha(data)})
			if name == "lying" && (e.kind == "minio" || e.kind == "seaweedfs") {
				// MinIO and SeaweedFS do not compute checksums on copy: the record is all there is.
				t.Logf("%s, source with a false record: Copy = %v", e.kind, err)
				continue
			}
			if !errors.Is(err, store.ErrChecksum) {
				t.Errorf("Copy from the %s corrupt source = %v, want ErrChecksum", name, err)
			} else {
				t.Logf("%s: %v", name, err)
			}
			checkAbsent(t, e, s, name+"-copy")
		}
	})
}

// TestChecksumModesRecorded: each mode's uploads carry the checksum the server stores (CRC
// modes: a FULL_OBJECT checksum, also for multipart objects) and the record Copy relies on.
func TestChecksumModesRecorded(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		for _, mode := range verifiedModes {
			t.Run(string(mode), func(t *testing.T) {
				s, _ := corruptingStore(t, e, mode, 0, 14)
				for _, n := range []int{100, 3*testPartSize + 9} {
					key := fmt.Sprintf("f%d", n)
					data := randBytes(uint64(n), n)
					if _, err := s.Put(t.Context(), key, bytes.NewReader(data), store.PutOptions{Size: int64(n)}); err != nil {
						t.Fatal(err)
					}
					oi, err := e.mc.StatObject(t.Context(), s.Bucket(), objectKey(key), minio.StatObjectOptions{Checksum: true})
					if err != nil {
						t.Fatal(err)
					}
					if got := oi.UserMetadata["Upload-Checksum"]; got != string(mode) {
						t.Errorf("%s: recorded upload checksum %q, want %q", key, got, mode)
					}
					var stored string
					switch mode {
					case s3store.ChecksumCRC32C:
						stored = oi.ChecksumCRC32C
					case s3store.ChecksumCRC64NVME:
						stored = oi.ChecksumCRC64NVME
					}
					t.Logf("%s %s: stored checksum %q type %q", mode, key, stored, oi.ChecksumMode)
					if mode != s3store.ChecksumMD5 && (stored == "" || strings.Contains(stored, "-")) {
						t.Errorf("%s: stored checksum %q, want a full-object one", key, stored)
					}
				}
			})
		}
	})
}

// headerRecorder records the headers of the PUT requests a client sends.
type headerRecorder struct {
	inner s3.HTTPClient
	mu    sync.Mutex
	puts  []http.Header
}

func (h *headerRecorder) Do(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut {
		h.mu.Lock()
		h.puts = append(h.puts, r.Header.Clone())
		h.mu.Unlock()
	}
	return h.inner.Do(r)
}

// TestChecksumOnTheWire: each mode's PutObject and UploadPart requests carry the checksum as a
// plain header computed before sending (never aws-chunked encoding with a trailer, which
// S3-compatible servers refuse), with an UNSIGNED-PAYLOAD signature; none sends no checksum.
// This pins the SDK's behaviour with ChecksumAlgorithm left unset and the value given.
func TestChecksumOnTheWire(t *testing.T) {
	e := newEnv(t, testserver.KindMinIO)
	header := map[s3store.Checksum]string{
		s3store.ChecksumCRC32C:    "X-Amz-Checksum-Crc32c",
		s3store.ChecksumCRC64NVME: "X-Amz-Checksum-Crc64nvme",
		s3store.ChecksumMD5:       "Content-Md5",
	}
	for _, mode := range s3store.Checksums {
		t.Run(string(mode), func(t *testing.T) {
			opts := e.opts
			opts.Checksum = mode
			base, err := s3store.NewClient(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			rec := &headerRecorder{}
			client := s3.New(base.Options(), func(o *s3.Options) {
				rec.inner = o.HTTPClient
				o.HTTPClient = rec
			})
			s := s3store.New(client, e.srv.NewBucket(t, t.Name()), "mirror/", opts)
			small, large := randBytes(61, 1000), randBytes(62, 2*testPartSize+1)
			for key, data := range map[string][]byte{"small": small, "large": large} {
				if _, err := s.Put(t.Context(), key, bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: sha(data)}); err != nil {
					t.Fatal(err)
				}
			}
			if len(rec.puts) != 4 { // one PutObject, three UploadParts
				t.Fatalf("%d PUT requests, want 4", len(rec.puts))
			}
			for _, h := range rec.puts {
				if h.Get("X-Amz-Content-Sha256") != "UNSIGNED-PAYLOAD" || h.Get("X-Amz-Trailer") != "" ||
					strings.Contains(h.Get("Content-Encoding"), "aws-chunked") || h.Get("X-Amz-Decoded-Content-Length") != "" {
					t.Errorf("request not sent as a plain unsigned body: %v", h)
				}
				var got []string
				for k := range h {
					if strings.HasPrefix(k, "X-Amz-Checksum-") || k == "Content-Md5" {
						got = append(got, k)
					}
				}
				want := []string{header[mode]}
				if mode == s3store.ChecksumNone {
					want = nil
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("checksum headers %v, want %v", got, want)
				}
			}
		})
	}
}
