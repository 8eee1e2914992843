package sync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/internal/inproc"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/sync"
)

// handUpstream is a hand-written unsigned stream served over HTTP: an index, one products file
// with one item whose size is written as given (any JSON token: hostile sizes), and the item's
// few bytes of content. Handlers may replace how a path is served.
type handUpstream struct {
	server   *httptest.Server
	src      store.Source
	files    map[string][]byte
	mu       gosync.Mutex
	handlers map[string]http.HandlerFunc
	requests map[string]int
}

const (
	handProducts = "streams/v1/com.example:hostile.json"
	handIndex    = "streams/v1/index.json"
	handContent  = "hostile/amd64/20250701/boot-kernel"
)

var handBody = []byte("eight b!")

func newHandUpstream(t *testing.T, sizeToken string) *handUpstream {
	t.Helper()
	return makeHandUpstream(t, sizeToken, false)
}

// newHandUpstreamInproc is newHandUpstream served without a socket (internal/inproc), for tests
// in a synctest bubble.
func newHandUpstreamInproc(t *testing.T, sizeToken string) *handUpstream {
	t.Helper()
	return makeHandUpstream(t, sizeToken, true)
}

func makeHandUpstream(t *testing.T, sizeToken string, inprocess bool) *handUpstream {
	t.Helper()
	sum := sha256.Sum256(handBody)
	products := fmt.Sprintf(`{"content_id":"com.example:hostile","datatype":"image-ids","format":"products:1.0",`+
		`"products":{"com.example:hostile:amd64":{"arch":"amd64","os":"ubuntu","release":"hostile",`+
		`"versions":{"20250701":{"items":{"boot-kernel":{"ftype":"boot-kernel","path":%q,"sha256":%q,"size":%s}}}}}},`+
		`"updated":"Thu, 24 Jul 2025 09:01:42 +0000"}`, handContent, hex.EncodeToString(sum[:]), sizeToken)
	index := fmt.Sprintf(`{"format":"index:1.0","index":{"com.example:hostile":{"datatype":"image-ids","format":"products:1.0",`+
		`"path":%q,"products":["com.example:hostile:amd64"],"updated":"Thu, 24 Jul 2025 09:01:42 +0000"}},`+
		`"updated":"Thu, 24 Jul 2025 09:01:42 +0000"}`, handProducts)
	u := &handUpstream{
		files:    map[string][]byte{handIndex: []byte(index), handProducts: []byte(products), handContent: handBody},
		handlers: map[string]http.HandlerFunc{},
		requests: map[string]int{},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		u.mu.Lock()
		u.requests[p]++
		h := u.handlers[p]
		data, ok := u.files[p]
		u.mu.Unlock()
		switch {
		case h != nil:
			h(w, r)
		case ok:
			http.ServeContent(w, r, p, time.Time{}, bytes.NewReader(data))
		default:
			http.NotFound(w, r)
		}
	})
	client, url := inproc.Client(handler), inproc.URL
	if !inprocess {
		u.server = httptest.NewServer(handler)
		t.Cleanup(u.server.Close)
		client, url = u.server.Client(), u.server.URL+"/"
	}
	src, err := httpstore.New(client, url, httpstore.Options{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	u.src = src
	return u
}

func (u *handUpstream) handle(path string, h http.HandlerFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.handlers[path] = h
}

func (u *handUpstream) count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.requests[path]
}

// checkNothingLeft fails when dst's lock is still held, or dst holds any metadata or the content.
func checkNothingLeft(t *testing.T, dst store.Target) {
	t.Helper()
	ctx := t.Context()
	checkReleased(t, dst)
	for _, key := range []string{handIndex, handProducts, handContent} {
		ok, err := store.Exists(ctx, dst, key)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			t.Errorf("%s is in the target after the failed run", key)
		}
	}
}

// TestHostileSizes: sizes that overflow, are negative, fractional or huge fail the run with an
// error naming the item's path, exit-1 style (an error, never a panic), before any content is
// requested, with the lock released and nothing published; into a directory and into MinIO.
func TestHostileSizes(t *testing.T) {
	cases := []struct {
		size     string
		tooLarge bool // within int64, refused by --max-file-size rather than by the parser
	}{
		{"9000000000000000000", true}, // 9e18 as an integer: was a makeslice panic in s3store
		{"5497558138880", true},       // 5 TiB
		{"68719476737", true},         // 64 GiB + 1
		{"9e18", false},
		{"1e30", false},
		{"99999999999999999999", false},
		{"-1", false},
		{"1.5", false},
		{`"-8"`, false},
	}
	targettest.Each(t, []targettest.Kind{targettest.Directory, targettest.MinIO}, targettest.Options{Parallel: true}, func(t *testing.T, kind targettest.Kind) {
		for _, c := range cases {
			t.Run(c.size, func(t *testing.T) {
				t.Parallel()
				up := newHandUpstream(t, c.size)
				dst := targettest.New(t, kind, targettest.Options{}).Store
				_, err := sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{StartPath: handIndex}})
				if err == nil {
					t.Fatal("a run with a hostile size succeeded")
				}
				if !strings.Contains(err.Error(), handContent) {
					t.Errorf("the error does not name the path %s: %v", handContent, err)
				}
				if c.tooLarge {
					if !errors.Is(err, sync.ErrTooLarge) || !strings.Contains(err.Error(), strings.Trim(c.size, `"`)) {
						t.Errorf("want ErrTooLarge naming the size %s, got: %v", c.size, err)
					}
				}
				t.Logf("%v", err)
				if n := up.count(handContent); n != 0 {
					t.Errorf("the content was requested %d times; want the item refused before any transfer", n)
				}
				checkNothingLeft(t, dst)
			})
		}
	})
}

// TestMaxFileSizeOption: an item within the limit passes, one byte over is refused; a negative
// limit turns the check off.
func TestMaxFileSizeOption(t *testing.T) {
	size := strconv.Itoa(len(handBody))
	for _, c := range []struct {
		limit int64
		ok    bool
	}{{int64(len(handBody)), true}, {int64(len(handBody)) - 1, false}, {-1, true}} {
		up := newHandUpstream(t, size)
		_, dst := newTarget(t)
		_, err := sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{StartPath: handIndex}, Limits: sync.Limits{MaxFileSize: c.limit}})
		if c.ok && err != nil {
			t.Errorf("limit %d: %v", c.limit, err)
		}
		if !c.ok {
			if !errors.Is(err, sync.ErrTooLarge) {
				t.Errorf("limit %d: want ErrTooLarge, got %v", c.limit, err)
			}
			checkNothingLeft(t, dst)
		}
	}
}

// dripReader reads one byte at a time, every every, until the time until, then at full speed;
// it stops when ctx (the request's) ends.
type dripReader struct {
	*bytes.Reader
	ctx   context.Context
	every time.Duration
	until time.Time
}

func (d *dripReader) Read(p []byte) (int, error) {
	if time.Now().Before(d.until) && len(p) > 0 {
		select {
		case <-d.ctx.Done():
			return 0, d.ctx.Err()
		case <-time.After(d.every):
		}
		p = p[:1]
	}
	return d.Reader.Read(p)
}

// drip serves data (honouring Range) one byte every every, flushed as it goes, for at most
// limit after the handler is made (then the rest at once), so that a run without a deadline
// would still end, successfully.
func drip(data []byte, every, limit time.Duration) http.HandlerFunc {
	until := time.Now().Add(limit)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream") // no sniffing: headers go at once
		http.ServeContent(flushWriter{w}, r, "", time.Time{}, &dripReader{bytes.NewReader(data), r.Context(), every, until})
	}
}

// flushWriter flushes every write, so each dripped byte leaves at once.
type flushWriter struct{ http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.ResponseWriter.Write(p)
	f.ResponseWriter.(http.Flusher).Flush()
	return n, err
}

// TestDripFeedFails: an upstream that drips one byte at a time (never stalling long enough for
// the stall timeout) fails the file at its deadline, naming it, with the lock released: content
// fetched with one request or in parallel ranges, and metadata. The drip gives up after a few
// seconds and sends the rest, so without a deadline the run would succeed.
func TestDripFeedFails(t *testing.T) {
	for _, c := range []struct {
		name   string
		path   string
		ranged bool
	}{{"content", handContent, false}, {"content-ranged", handContent, true}, {"metadata", handProducts, false}} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { // fake time: the drip and the deadline pass at once
				path := c.path
				up := newHandUpstreamInproc(t, strconv.Itoa(len(handBody)))
				data := up.files[path]
				if path == handContent {
					// Long enough that a drip of it outlasts the deadline.
					data = bytes.Repeat([]byte{'x'}, 4096)
					up.files[path] = data
					sum := sha256.Sum256(data)
					old := sha256.Sum256(handBody)
					up.files[handProducts] = bytes.Replace(bytes.Replace(up.files[handProducts],
						[]byte(hex.EncodeToString(old[:])), []byte(hex.EncodeToString(sum[:])), 1),
						[]byte(`"size":8`), []byte(`"size":4096`), 1)
				}
				up.handle(path, drip(data, 20*time.Millisecond, 4*time.Second))
				_, dst := newTarget(t)
				opts := sync.Options{
					Selection: sync.Selection{StartPath: handIndex},
					Limits:    sync.Limits{MinRate: 64 << 10, FileDeadlineBase: time.Second},
				}
				if c.ranged {
					opts.RangeChunk, opts.RangeStreams = 512, 3
				}
				_, err := sync.Run(t.Context(), up.src, dst, opts)
				if err == nil {
					t.Fatal("a drip-fed run succeeded")
				}
				if !errors.Is(err, sync.ErrTooSlow) || !strings.Contains(err.Error(), path) {
					t.Errorf("want ErrTooSlow naming %s, got: %v", path, err)
				}
				if c.ranged && up.count(path) < 2 {
					t.Errorf("%d requests for %s: the ranged reader was not used", up.count(path), path)
				}
				t.Log(err)
				checkNothingLeft(t, dst)
			})
		})
	}
}

// countingSource counts the bytes read from the readers its Open returns, by key, and passes
// on what they know of their size.
type countingSource struct {
	store.Source
	mu gosync.Mutex
	n  map[string]int64
}

type countingBody struct {
	io.ReadCloser
	src *countingSource
	key string
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.src.mu.Lock()
	c.src.n[c.key] += int64(n)
	c.src.mu.Unlock()
	return n, err
}

func (c *countingBody) Size() int64 {
	if s, ok := c.ReadCloser.(store.Sizer); ok {
		return s.Size()
	}
	return -1
}

func (s *countingSource) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	rc, err := s.Source.Open(ctx, key, offset)
	if err != nil {
		return nil, err
	}
	return &countingBody{rc, s, key}, nil
}

func (s *countingSource) read(key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[key]
}

// TestMetadataOverLimitNotRead: a products file larger than --metadata-max-size is refused
// without reading it: nothing of it when its size is announced (Content-Length), at most the
// limit plus one byte, once, when it is not; the error names the file.
func TestMetadataOverLimitNotRead(t *testing.T) {
	const limit = 64 << 10
	big := append(bytes.Repeat([]byte{' '}, 32<<20), '{', '}')
	for _, announced := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length=%v", announced), func(t *testing.T) {
			up := newHandUpstream(t, "8")
			var served atomic.Int64
			up.handle(handProducts, func(w http.ResponseWriter, r *http.Request) {
				if announced {
					w.Header().Set("Content-Length", strconv.Itoa(len(big)))
				}
				w.WriteHeader(http.StatusOK)
				for off := 0; off < len(big); off += 4096 {
					n, err := w.Write(big[off:min(off+4096, len(big))])
					served.Add(int64(n))
					if err != nil {
						return
					}
					if !announced {
						w.(http.Flusher).Flush()
					}
				}
			})
			src := &countingSource{Source: up.src, n: map[string]int64{}}
			_, dst := newTarget(t)
			_, err := sync.Run(t.Context(), src, dst, sync.Options{Selection: sync.Selection{StartPath: handIndex}, Limits: sync.Limits{MetadataLimit: limit}})
			if err == nil {
				t.Fatal("an over-limit products file was accepted")
			}
			if !errors.Is(err, store.ErrOverLimit) || !strings.Contains(err.Error(), handProducts) {
				t.Errorf("want ErrOverLimit naming %s, got: %v", handProducts, err)
			}
			read := src.read(handProducts)
			want := int64(0)
			if !announced {
				want = limit + 1
			}
			if read > want {
				t.Errorf("read %d bytes of the %d-byte file (limit %d); want at most %d", read, len(big), limit, want)
			}
			if n := up.count(handProducts); n != 1 {
				t.Errorf("the products file was requested %d times; an over-limit file is not tried again", n)
			}
			if s := served.Load(); s >= int64(len(big)) {
				t.Errorf("the upstream served the whole file (%d bytes)", s)
			}
			t.Logf("served %d bytes (socket buffers), read %d", served.Load(), read)
			checkNothingLeft(t, dst)
		})
	}
}

// TestCatalogueOverLimitInAll: an index naming many products files, each under the limit on one
// file, is refused once their metadata comes to more than four times that limit in all (memory
// would otherwise grow with every entry the index adds); the error names the cap and nothing is
// written to the target.
func TestCatalogueOverLimitInAll(t *testing.T) {
	const limit = 64 << 10
	const entries = 12 // of about 40 KiB each: 480 KiB, above 4 × 64 KiB
	files := map[string][]byte{}
	var index strings.Builder
	index.WriteString(`{"format":"index:1.0","updated":"Thu, 24 Jul 2025 09:01:42 +0000","index":{`)
	for i := range entries {
		id := fmt.Sprintf("com.example:many%02d", i)
		path := fmt.Sprintf("streams/v1/many%02d.json", i)
		if i > 0 {
			index.WriteString(",")
		}
		fmt.Fprintf(&index, `%q:{"datatype":"image-ids","format":"products:1.0","path":%q,"products":[%q]}`, id, path, id+":amd64")
		doc := fmt.Sprintf(`{"content_id":%q,"datatype":"image-ids","format":"products:1.0","products":{%q:{"arch":"amd64","os":"ubuntu","release":"r%02d","versions":{}}}}`, id, id+":amd64", i)
		files[path] = append([]byte(doc), bytes.Repeat([]byte{' '}, 40<<10)...)
	}
	index.WriteString(`}}`)
	files["streams/v1/index.json"] = []byte(index.String())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	src, err := httpstore.New(srv.Client(), srv.URL+"/", httpstore.Options{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, dst := newTarget(t)
	opts := sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}, Limits: sync.Limits{MetadataLimit: limit}}
	_, err = sync.Run(t.Context(), src, dst, opts)
	if !errors.Is(err, store.ErrOverLimit) || !strings.Contains(err.Error(), "in all") {
		t.Fatalf("a catalogue of %d files of 40 KiB with a 64 KiB limit: %v; want ErrOverLimit for the whole", entries, err)
	}
	t.Logf("refused: %v", err)
	checkNothingLeft(t, dst)

	// The same catalogue under a limit whose four times hold it is read.
	cat, err := sync.LoadCatalogue(t.Context(), src, "streams/v1/index.json", sync.Verification{}, 128<<10, 4)
	if err != nil || len(cat.Products) != entries {
		t.Fatalf("with the cap above the catalogue: %v", err)
	}
}
