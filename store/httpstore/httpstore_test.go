package httpstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/internal/inproc"
	"github.com/ssmirror/ssmirror/store"
)

// Proxy settings for TestDefaultClientProxy. http.ProxyFromEnvironment reads the environment
// once per process, so they are set before any test runs. Loopback addresses are never proxied,
// so the other tests are unaffected.
func TestMain(m *testing.M) {
	os.Setenv("HTTP_PROXY", "http://proxy.example.test:3128")
	os.Setenv("HTTPS_PROXY", "http://secure-proxy.example.test:3129")
	os.Setenv("NO_PROXY", "direct.example.test")
	os.Unsetenv("http_proxy")
	os.Unsetenv("https_proxy")
	os.Unsetenv("no_proxy")
	os.Unsetenv("REQUEST_METHOD")
	os.Exit(m.Run())
}

func content(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// objects serves data at /key paths with http.ServeContent (Range, HEAD, Content-Length).
type objects struct {
	mu      sync.Mutex
	data    map[string][]byte
	gets    map[string]int
	ranges  []string
	handler func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool // true: handled
}

func newObjects(files map[string][]byte) *objects {
	return &objects{data: files, gets: map[string]int{}}
}

func (o *objects) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/")
	o.mu.Lock()
	data, ok := o.data[key]
	if r.Method == http.MethodGet {
		o.gets[key]++
		o.ranges = append(o.ranges, r.Header.Get("Range"))
	}
	n := o.gets[key]
	h := o.handler
	o.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if h != nil && r.Method == http.MethodGet && h(w, r, data, n) {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, key, time.Time{}, bytes.NewReader(data))
}

func (o *objects) getCount(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gets[key]
}

func newStore(t *testing.T, base string, opts Options) *Store {
	t.Helper()
	s, err := New(DefaultClient(), base, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.backoff = func(int) time.Duration { return time.Millisecond }
	return s
}

// newInprocStore is newStore for the handler served without a socket (internal/inproc), for
// tests of timers in a synctest bubble.
func newInprocStore(t *testing.T, h http.Handler, opts Options) *Store {
	t.Helper()
	s, err := New(inproc.Client(h), inproc.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.backoff = func(int) time.Duration { return time.Millisecond }
	return s
}

func readAll(t *testing.T, s *Store, key string, offset int64) ([]byte, error) {
	t.Helper()
	rc, err := s.Open(t.Context(), key, offset)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func mustEqual(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d bytes (equal prefix %d)", len(got), len(want), commonPrefix(got, want))
	}
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

func TestFetchAndOffset(t *testing.T) {
	want := content(100_000)
	srv := httptest.NewServer(newObjects(map[string][]byte{"jammy/amd64/20250718/squashfs": want}))
	defer srv.Close()
	s := newStore(t, srv.URL+"/", Options{})

	got, err := readAll(t, s, "jammy/amd64/20250718/squashfs", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want)

	got, err = readAll(t, s, "jammy/amd64/20250718/squashfs", 12345)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want[12345:])

	got, err = readAll(t, s, "jammy/amd64/20250718/squashfs", int64(len(want)))
	if err != nil {
		t.Fatalf("offset at end: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("offset at end: got %d bytes", len(got))
	}

	for _, off := range []int64{0, 12345} {
		rc, err := s.Open(t.Context(), "jammy/amd64/20250718/squashfs", off)
		if err != nil {
			t.Fatal(err)
		}
		if got := rc.(store.Sizer).Size(); got != int64(len(want))-off {
			t.Errorf("Open at %d: Size() = %d, want %d", off, got, int64(len(want))-off)
		}
		rc.Close()
	}

	info, err := s.Stat(t.Context(), "jammy/amd64/20250718/squashfs")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(want)) || info.SHA256 != "" || info.Key != "jammy/amd64/20250718/squashfs" {
		t.Fatalf("Stat = %+v", info)
	}
}

func TestNotFound(t *testing.T) {
	srv := httptest.NewServer(newObjects(map[string][]byte{}))
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	_, err := s.Open(t.Context(), "streams/v1/missing.json", 0)
	if !errors.Is(err, store.ErrNotExist) || !strings.Contains(err.Error(), "streams/v1/missing.json") {
		t.Fatalf("Open: %v, want ErrNotExist naming the key", err)
	}
	_, err = s.Stat(t.Context(), "streams/v1/missing.json")
	if !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("Stat: %v, want ErrNotExist", err)
	}
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusGone)
	}))
	defer gone.Close()
	s = newStore(t, gone.URL, Options{})
	if _, err := s.Open(t.Context(), "a", 0); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("410: %v, want ErrNotExist", err)
	}
}

func TestOtherStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	_, err := s.Open(t.Context(), "secret/file", 0)
	if err == nil || errors.Is(err, store.ErrNotExist) || !strings.Contains(err.Error(), srv.URL+"/secret/file") || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Open: %v, want an error naming the URL and 403", err)
	}
	_, err = s.Stat(t.Context(), "secret/file")
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Stat: %v, want 403", err)
	}
}

func TestMirrors(t *testing.T) {
	want := content(5000)
	// The primary's root is /root/, the mirror's is /.
	primary := newObjects(map[string][]byte{"root/only/on/primary": []byte("p")})
	p := httptest.NewServer(primary)
	defer p.Close()
	mirror := newObjects(map[string][]byte{"only/on/mirror": want})
	m := httptest.NewServer(mirror)
	defer m.Close()
	s := newStore(t, p.URL+"/root", Options{Mirrors: []string{m.URL + "/"}})

	got, err := readAll(t, s, "only/on/mirror", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want)
	if primary.getCount("root/only/on/mirror") != 1 {
		t.Fatalf("primary was not asked first")
	}
	got, err = readAll(t, s, "only/on/primary", 0)
	if err != nil || string(got) != "p" {
		t.Fatalf("primary object: %q, %v", got, err)
	}
	if mirror.getCount("only/on/primary") != 0 {
		t.Fatalf("mirror asked for an object the primary has")
	}
	if info, err := s.Stat(t.Context(), "only/on/mirror"); err != nil || info.Size != 5000 {
		t.Fatalf("Stat via mirror: %+v, %v", info, err)
	}
	if _, err := readAll(t, s, "nowhere", 0); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("missing everywhere: %v", err)
	}
}

// hijackCut writes a full set of headers and the first cut bytes of data, then closes the
// connection.
func hijackCut(t *testing.T, w http.ResponseWriter, data []byte, cut int) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		t.Error("response writer cannot hijack")
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", len(data))
	buf.Write(data[:cut])
	buf.Flush()
}

func TestResumeAfterConnectionCut(t *testing.T) {
	want := content(200_000)
	o := newObjects(map[string][]byte{"big": want})
	o.handler = func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool {
		if n == 1 {
			hijackCut(t, w, data, 70_000)
			return true
		}
		return false
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	got, err := readAll(t, s, "big", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want)
	if o.getCount("big") != 2 {
		t.Fatalf("%d requests, want 2", o.getCount("big"))
	}
	if r := o.ranges[1]; r != "bytes=70000-" {
		t.Fatalf("resume asked for %q, want bytes=70000-", r)
	}
}

func TestResumeShortBody(t *testing.T) {
	want := content(50_000)
	o := newObjects(map[string][]byte{"short": want})
	o.handler = func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool {
		if n <= 2 {
			// Content-Length promises everything; the body ends early each of the first two times.
			start := int64(0)
			if rng := r.Header.Get("Range"); rng != "" {
				start, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"), 10, 64)
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
				w.Header().Set("Content-Length", strconv.Itoa(len(data)-int(start)))
				w.WriteHeader(http.StatusPartialContent)
			} else {
				w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			}
			w.Write(data[start : start+10_000])
			return true
		}
		return false
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	got, err := readAll(t, s, "short", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want)
	if o.getCount("short") != 3 {
		t.Fatalf("%d requests, want 3", o.getCount("short"))
	}
}

func TestResumeWithoutContentLength(t *testing.T) {
	want := content(64_000)
	o := newObjects(map[string][]byte{"chunked": want})
	o.handler = func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool {
		if n != 1 {
			return false
		}
		// Chunked encoding, no Content-Length, then the connection breaks mid-chunk.
		hj := w.(http.Hijacker)
		conn, buf, err := hj.Hijack()
		if err != nil {
			t.Error(err)
			return true
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", 20_000)
		buf.Write(data[:15_000])
		buf.Flush()
		return true
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	got, err := readAll(t, s, "chunked", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want)
}

func TestResumeAfterStall(t *testing.T) { synctest.Test(t, testResumeAfterStall) } // the stall timer on fake time

func testResumeAfterStall(t *testing.T) {
	want := content(80_000)
	o := newObjects(map[string][]byte{"slow": want})
	release := make(chan struct{})
	defer close(release)
	o.handler = func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool {
		if n != 1 {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:30_000])
		w.(http.Flusher).Flush()
		select { // stall until the client gives up on this request (or the test ends)
		case <-r.Context().Done():
		case <-release:
		}
		return true
	}
	s := newInprocStore(t, o, Options{StallTimeout: 200 * time.Millisecond})
	began := time.Now()
	got, err := readAll(t, s, "slow", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want)
	// Fake time: the read took the stall timeout and a backoff, whatever the machine.
	if took := time.Since(began); took < 200*time.Millisecond || took >= 2*time.Second {
		t.Errorf("the stalled read resumed after %v, want the stall timeout (200ms) and a short backoff", took)
	}
	if o.getCount("slow") != 2 {
		t.Fatalf("%d requests, want 2", o.getCount("slow"))
	}
}

// A slow consumer is not a stall: time spent outside Read does not count.
func TestSlowConsumerIsNotStall(t *testing.T) { synctest.Test(t, testSlowConsumerIsNotStall) } // on fake time

func testSlowConsumerIsNotStall(t *testing.T) {
	want := content(10_000)
	o := newObjects(map[string][]byte{"f": want})
	s := newInprocStore(t, o, Options{StallTimeout: 50 * time.Millisecond})
	rc, err := s.Open(t.Context(), "f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []byte
	buf := make([]byte, 4000)
	for {
		n, err := rc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(120 * time.Millisecond)
	}
	mustEqual(t, got, want)
	if o.getCount("f") != 1 {
		t.Fatalf("%d requests, want 1", o.getCount("f"))
	}
}

func TestServerIgnoresRange(t *testing.T) {
	want := content(40_000)
	o := newObjects(map[string][]byte{"norange": want})
	o.handler = func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool {
		if n == 1 {
			hijackCut(t, w, data, 25_000)
			return true
		}
		// Always the whole object with 200, whatever Range says.
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
		return true
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	got, err := readAll(t, s, "norange", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want)
	got, err = readAll(t, s, "norange", 1234)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want[1234:])
}

func TestWrongContentRange(t *testing.T) {
	want := content(40_000)
	o := newObjects(map[string][]byte{"bad": want})
	o.handler = func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool {
		if n == 1 {
			hijackCut(t, w, data, 25_000)
			return true
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data)
		return true
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	s := newStore(t, srv.URL, Options{Retries: 2})
	_, err := readAll(t, s, "bad", 0)
	if err == nil || !strings.Contains(err.Error(), "starting at byte 0") {
		t.Fatalf("got %v, want a Content-Range mismatch", err)
	}
}

func TestGiveUpAfterRetries(t *testing.T) {
	want := content(40_000)
	o := newObjects(map[string][]byte{"flaky/file": want})
	o.handler = func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool {
		if n == 1 {
			hijackCut(t, w, data, 10_000)
			return true
		}
		// Every resume is cut before its first byte.
		hj := w.(http.Hijacker)
		conn, _, err := hj.Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	s := newStore(t, srv.URL, Options{Retries: 3})
	got, err := readAll(t, s, "flaky/file", 0)
	if err == nil || !strings.Contains(err.Error(), "flaky/file") || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("got %v, want an error naming the key after 3 attempts", err)
	}
	if len(got) != 10_000 {
		t.Fatalf("read %d bytes before failing, want 10000", len(got))
	}
	if o.getCount("flaky/file") != 4 {
		t.Fatalf("%d requests, want 1 + 3 retries", o.getCount("flaky/file"))
	}

	// Retries < 0: no resume at all.
	o.mu.Lock()
	o.gets = map[string]int{}
	o.mu.Unlock()
	s = newStore(t, srv.URL, Options{Retries: -1})
	if _, err := readAll(t, s, "flaky/file", 0); err == nil {
		t.Fatal("no error with resuming disabled")
	}
	if o.getCount("flaky/file") != 1 {
		t.Fatalf("%d requests with resuming disabled, want 1", o.getCount("flaky/file"))
	}
}

func TestContextCancel(t *testing.T) { synctest.Test(t, testContextCancel) } // on fake time

func testContextCancel(t *testing.T) {
	want := content(100_000)
	o := newObjects(map[string][]byte{"f": want})
	release := make(chan struct{})
	defer close(release)
	o.handler = func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:1000])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return true
	}
	s := newInprocStore(t, o, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	rc, err := s.Open(ctx, "f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = io.ReadAll(rc)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if o.getCount("f") != 1 {
		t.Fatalf("%d requests, want 1 (no resume after cancel)", o.getCount("f"))
	}
	if _, err := s.Open(ctx, "f", 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a cancelled context: %v", err)
	}
}

func TestKeyEscaping(t *testing.T) {
	var gotURI string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotURI = r.RequestURI
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	s := newStore(t, srv.URL+"/ephemeral-v3/stable", Options{})
	for key, want := range map[string]string{
		"streams/v1/com.ubuntu.maas:stable:v3:download.sjson": "/ephemeral-v3/stable/streams/v1/com.ubuntu.maas:stable:v3:download.sjson",
		"dir with space/a?b#c%d":                              "/ephemeral-v3/stable/dir%20with%20space/a%3Fb%23c%25d",
	} {
		if _, err := readAll(t, s, key, 0); err != nil {
			t.Fatal(err)
		}
		if gotURI != want {
			t.Errorf("key %q requested as %q, want %q", key, gotURI, want)
		}
	}
	if got, want := s.Describe(), srv.URL+"/ephemeral-v3/stable/"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if _, err := s.Open(t.Context(), "../etc/passwd", 0); err == nil {
		t.Error("Open accepted a key with ..")
	}
}

func TestNewRejects(t *testing.T) {
	for _, base := range []string{"ftp://example.test/", "file:///srv/mirror", "/srv/mirror", "http://", "https://h/x?q=1"} {
		if _, err := New(nil, base, Options{}); err == nil {
			t.Errorf("New(%q) accepted", base)
		}
	}
	if _, err := New(nil, "https://h/", Options{Mirrors: []string{"s3://b/"}}); err == nil {
		t.Error("New accepted an s3 mirror")
	}
}

// TestReadOnly: the HTTP store is a store.Source and offers no writes at all.
func TestReadOnly(t *testing.T) {
	var s store.Source = newStore(t, "http://127.0.0.1:1/", Options{})
	if _, ok := s.(store.Target); ok {
		t.Error("the HTTP store is a store.Target: it must not offer writes")
	}
}

func TestStatFallsBackToGet(t *testing.T) {
	want := content(3000)
	var heads, gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads.Add(1)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		gets.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(want)))
		w.Header().Set("Last-Modified", "Thu, 24 Jul 2025 08:01:49 GMT")
		w.Write(want)
	}))
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	info, err := s.Stat(t.Context(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 3000 || info.ModTime.IsZero() || heads.Load() != 1 || gets.Load() != 1 {
		t.Fatalf("Stat = %+v after %d HEAD and %d GET", info, heads.Load(), gets.Load())
	}
}

func TestDefaultClientProxy(t *testing.T) {
	proxy := DefaultClient().Transport.(*http.Transport).Proxy
	for target, want := range map[string]string{
		"http://images.example.test/a":   "http://proxy.example.test:3128",
		"https://images.example.test/a":  "http://secure-proxy.example.test:3129",
		"http://direct.example.test/a":   "",
		"http://127.0.0.1:8080/loopback": "",
	} {
		u, _ := url.Parse(target)
		got, err := proxy(&http.Request{URL: u})
		if err != nil {
			t.Fatal(err)
		}
		gotS := ""
		if got != nil {
			gotS = got.String()
		}
		if gotS != want {
			t.Errorf("proxy for %s = %q, want %q", target, gotS, want)
		}
	}
}

func TestDefaultClientRefusesOtherSchemes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	}))
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	_, err := s.Open(t.Context(), "x", 0)
	if err == nil || !strings.Contains(err.Error(), "refusing redirect") {
		t.Fatalf("got %v, want a refused redirect", err)
	}
}

// A resumed response for a different object (other size) is refused instead of spliced in.
func TestObjectChangedWhileReading(t *testing.T) {
	want := content(30_000)
	other := content(31_000)
	o := newObjects(map[string][]byte{"m": want})
	o.handler = func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool {
		if n == 1 {
			hijackCut(t, w, data, 1000)
			return true
		}
		http.ServeContent(w, r, "m", time.Time{}, bytes.NewReader(other))
		return true
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	_, err := readAll(t, s, "m", 0)
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("got %v, want object changed", err)
	}
	if o.getCount("m") != 2 {
		t.Fatalf("%d requests, want 2 (no retry of a changed object)", o.getCount("m"))
	}
}

// A resumed 206 response without Content-Length that ends cleanly before the object's size
// (known from the first response) is resumed again, not taken for the end.
func TestResumeChunkedRangeEndsEarly(t *testing.T) {
	want := content(60_000)
	o := newObjects(map[string][]byte{"f": want})
	o.handler = func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool {
		switch n {
		case 1:
			hijackCut(t, w, data, 10_000)
			return true
		case 2:
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 10000-%d/%d", len(data)-1, len(data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[10_000:20_000])
			w.(http.Flusher).Flush() // chunked: no Content-Length, clean end after 10000 bytes
			return true
		}
		return false
	}
	srv := httptest.NewServer(o)
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	got, err := readAll(t, s, "f", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want)
	if o.getCount("f") != 3 {
		t.Fatalf("%d requests, want 3", o.getCount("f"))
	}
}

// Stat passes on the server's ETag as it is sent, and "" when there is none.
func TestStatETag(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/tagged" {
			w.Header().Set("ETag", `"5f3a-63b1"`)
		}
		w.Header().Set("Content-Length", "4")
		w.Write([]byte("data"))
	}))
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	for key, want := range map[string]string{"tagged": `"5f3a-63b1"`, "untagged": ""} {
		info, err := s.Stat(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if info.ETag != want {
			t.Errorf("Stat(%q).ETag = %q, want %q", key, info.ETag, want)
		}
	}
}
