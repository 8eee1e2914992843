package ranged

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/store/retry"
)

const bigKey = "big/squashfs"

// bigBody is a deterministic 50 MiB body, made once.
var bigBody = gosync.OnceValue(func() []byte {
	b := make([]byte, 50<<20)
	rand.NewChaCha8([32]byte{1, 2, 3}).Read(b)
	return b
})

// rangeServer serves data at /big/squashfs with Range support (http.ServeContent); wrap, when
// set, may take over a request (true: handled).
type rangeServer struct {
	data []byte
	wrap func(w http.ResponseWriter, r *http.Request) bool

	mu       gosync.Mutex
	gets     int
	inFlight int
	maxIn    int
	arrived  chan struct{} // closed when two requests are in flight at once
}

func (s *rangeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.TrimPrefix(r.URL.Path, "/") != bigKey {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.gets++
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	wrap := s.wrap // read under the lock: a test may change it while requests are still in flight
	if s.inFlight >= 2 && s.arrived != nil {
		select {
		case <-s.arrived:
		default:
			close(s.arrived)
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if wrap != nil && wrap(w, r) {
		return
	}
	http.ServeContent(w, r, "squashfs", time.Time{}, bytes.NewReader(s.data))
}

func newRangeSource(t *testing.T, rs *rangeServer) (*httpstore.Store, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(rs)
	t.Cleanup(srv.Close)
	src, err := httpstore.New(srv.Client(), srv.URL, httpstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return src, srv
}

// newRangedReader reads key (size bytes) from src through a pool of streams range streams of
// chunk bytes, all for this file from its start (no rate gate), retrying a range as sync does (5
// attempts, about 0.5 s apart): a test that cancels the reader sees the cancellation, not a
// range's failure.
func newRangedReader(ctx context.Context, src store.RangeOpener, key string, size int64, streams int, chunk int64) *Reader {
	p := NewPool(max(streams, 1), chunk, PoolOptions{})
	policy := retry.Policy{Attempts: 5, Backoff: func(int) time.Duration { return 500 * time.Millisecond }}
	return p.Open(ctx, src, key, size, Options{Policy: policy}).(*Reader)
}

// readRanged reads key through a pool as newRangedReader does (ranges tried again 1 ms apart),
// with an odd-sized buffer.
func readRanged(ctx context.Context, src store.RangeOpener, size int64, streams int, chunk int64) ([]byte, error) {
	p := NewPool(max(streams, 1), chunk, PoolOptions{})
	policy := retry.Policy{Attempts: 5, Backoff: func(int) time.Duration { return time.Millisecond }}
	r := p.Open(ctx, src, bigKey, size, Options{Policy: policy})
	defer r.Close()
	var out bytes.Buffer
	_, err := io.CopyBuffer(&out, struct{ io.Reader }{r}, make([]byte, 7777))
	return out.Bytes(), err
}

func mustSame(t *testing.T, got, want []byte) {
	t.Helper()
	if sha256.Sum256(got) != sha256.Sum256(want) || !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("got %d bytes, want %d (first difference at byte %d)", len(got), len(want), i)
	}
}

// TestPoolHTTPBytes: over HTTP, the chunks come out in order and complete, whatever the number of
// streams and the chunk size, also when the size is not a multiple of the chunk.
func TestPoolHTTPBytes(t *testing.T) {
	data := bigBody()
	src, _ := newRangeSource(t, &rangeServer{data: data})
	for _, c := range []struct {
		size    int64
		streams int
		chunk   int64
	}{
		{50 << 20, 4, 8 << 20},         // 6¼ chunks
		{50 << 20, 3, 1<<20 + 3},       // many odd chunks
		{50<<20 - 1, 8, 5 << 20},       // more streams than needed at the end
		{50 << 20, 1, 4 << 20},         // one stream
		{3<<20 + 17, 4, 8 << 20},       // one short chunk
		{10 << 20, 16, 1 << 20},        // more streams than chunks
		{50 << 20, 2, 50 << 20},        // one chunk exactly the size
		{12345, 4, 1000},               // tiny
		{50<<20 - 12345, 5, 7<<20 + 1}, // not a multiple, odd chunk
	} {
		t.Run(fmt.Sprintf("%d/%dx%d", c.size, c.streams, c.chunk), func(t *testing.T) {
			got, err := readRanged(t.Context(), src, c.size, c.streams, c.chunk)
			if err != nil {
				t.Fatal(err)
			}
			mustSame(t, got, data[:c.size])
		})
	}
}

// cutWriter sends a response up to limit body bytes, then drops the connection.
type cutWriter struct {
	http.ResponseWriter
	limit int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if len(p) < c.limit {
		c.limit -= len(p)
		return c.ResponseWriter.Write(p)
	}
	c.ResponseWriter.Write(p[:c.limit])
	c.ResponseWriter.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

// TestPoolConnectionsCut: a server that drops a third of its connections part-way
// (some before any byte) still yields the whole body: every range resumes where it stopped.
func TestPoolConnectionsCut(t *testing.T) {
	data := bigBody()
	var mu gosync.Mutex
	rnd := rand.New(rand.NewPCG(7, 7))
	var cuts int
	rs := &rangeServer{data: data}
	rs.wrap = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		cut := rnd.IntN(3) == 0
		limit := rnd.IntN(2 << 20)
		if cut {
			cuts++
		}
		mu.Unlock()
		if cut {
			http.ServeContent(&cutWriter{ResponseWriter: w, limit: limit}, r, "squashfs", time.Time{}, bytes.NewReader(data))
			return true
		}
		return false
	}
	src, _ := newRangeSource(t, rs)
	got, err := readRanged(t.Context(), src, int64(len(data)), 4, 3<<20)
	if err != nil {
		t.Fatal(err)
	}
	mustSame(t, got, data)
	if cuts < 3 {
		t.Fatalf("only %d connections were cut: the test did not test resuming", cuts)
	}
	t.Logf("%d of %d requests cut", cuts, rs.gets)
}

// TestPoolHTTPChunkFails: a range the server refuses for good fails the reader with an error
// naming the key, the range and the server's answer, and nothing past the chunk before it comes
// out.
func TestPoolHTTPChunkFails(t *testing.T) {
	data := bigBody()
	const chunk = 4 << 20
	rs := &rangeServer{data: data}
	rs.wrap = func(w http.ResponseWriter, r *http.Request) bool {
		var from, to int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &from, &to); err == nil && from <= 3*chunk && 3*chunk <= to {
			http.Error(w, "broken disk", http.StatusInternalServerError)
			return true
		}
		return false
	}
	src, _ := newRangeSource(t, rs)
	got, err := readRanged(t.Context(), src, int64(len(data)), 4, chunk)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{bigKey, "bytes", "500"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	t.Log(err)
	if len(got) > 3*chunk {
		t.Errorf("read %d bytes past a failed chunk at byte %d", len(got), 3*chunk)
	}
	mustSame(t, got, data[:len(got)])
}

// fakeRanges serves data from memory; a range holding a byte offset in short comes one byte
// short, one holding an offset in long one byte long.
type fakeRanges struct {
	data        []byte
	short, long map[int64]bool
}

func (f *fakeRanges) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	end := off + n
	holds := func(at map[int64]bool) bool {
		for k := range at {
			if off <= k && k < off+n {
				return true
			}
		}
		return false
	}
	switch {
	case holds(f.short):
		end--
	case holds(f.long):
		end++
	}
	return io.NopCloser(bytes.NewReader(f.data[off:end])), nil
}

// TestPoolChunkLength: a range shorter than asked is io.ErrUnexpectedEOF naming the key and
// the bytes; a longer one fails too, whether a range stream or the file's own connection read
// it.
func TestPoolChunkLength(t *testing.T) {
	data := bigBody()[:1<<20]
	_, err := readRanged(t.Context(), &fakeRanges{data: data, short: map[int64]bool{300_000: true}}, int64(len(data)), 3, 100_000)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), bigKey) || !strings.Contains(err.Error(), "byte") {
		t.Errorf("short chunk: %v", err)
	}
	_, err = readRanged(t.Context(), &fakeRanges{data: data, long: map[int64]bool{500_000: true}}, int64(len(data)), 3, 100_000)
	if err == nil || !strings.Contains(err.Error(), bigKey) || !strings.Contains(err.Error(), "more than") {
		t.Errorf("long chunk: %v", err)
	}
	// The file's own connection only (one stream, always busy elsewhere: no slot for it).
	p := NewPool(0, 100_000, PoolOptions{})
	r := p.Open(t.Context(), &fakeRanges{data: data, long: map[int64]bool{0: true}}, bigKey, int64(len(data)), Options{})
	_, err = io.ReadAll(r)
	r.Close()
	if err == nil || !strings.Contains(err.Error(), bigKey) || !strings.Contains(err.Error(), "more than") {
		t.Errorf("long window on the file's own connection: %v", err)
	}
	got, err := readRanged(t.Context(), &fakeRanges{data: data}, int64(len(data)), 3, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	mustSame(t, got, data)
}

// settleGoroutines waits (a bounded while) for the goroutine count to come back to base.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	for range 200 {
		if runtime.NumGoroutine() <= base {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf)
}

// TestPoolHTTPCancel: cancelling the context mid-way makes Read fail with the cause (not
// hang on ranges the server holds back), and Close leaves no goroutine behind; so does closing a
// reader that was never read to the end.
func TestPoolHTTPCancel(t *testing.T) {
	base := runtime.NumGoroutine()
	data := bigBody()
	const chunk = 1 << 20
	rs := &rangeServer{data: data}
	rs.wrap = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Range") == "bytes=0-"+strconv.Itoa(chunk-1) {
			return false
		}
		// Every other range: headers, then nothing until the client goes away.
		w.Header().Set("Content-Length", strconv.Itoa(chunk))
		w.WriteHeader(http.StatusPartialContent)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	}
	srv := httptest.NewServer(rs)
	src, err := httpstore.New(srv.Client(), srv.URL, httpstore.Options{})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	r := newRangedReader(ctx, src, bigKey, int64(len(data)), 4, chunk)
	if _, err := io.ReadFull(r, make([]byte, chunk)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 100))
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), bigKey) {
			t.Errorf("after cancel: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Read still waiting a minute after the context was cancelled")
	}
	r.Close()
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Error("Read after Close did not fail")
	}

	// Closed half way, never cancelled. (A range request of the cancelled reader may still be
	// reaching the server: change the handler under its lock.)
	rs.mu.Lock()
	rs.wrap = nil
	rs.mu.Unlock()
	r = newRangedReader(t.Context(), src, bigKey, int64(len(data)), 4, chunk)
	if _, err := io.ReadFull(r, make([]byte, 5*chunk+7)); err != nil {
		t.Fatal(err)
	}
	r.Close()

	srv.Close()
	srv.Client().CloseIdleConnections()
	settleGoroutines(t, base)
}

// TestPoolParallel: the ranges of one file really are in flight at once. The server
// holds the first request back until a second arrives (or 20 s pass, which only a reader that
// asks for one range at a time would wait out).
func TestPoolParallel(t *testing.T) {
	data := bigBody()[:20<<20]
	rs := &rangeServer{data: data, arrived: make(chan struct{})}
	rs.wrap = func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-rs.arrived:
		case <-time.After(20 * time.Second):
		}
		return false
	}
	src, _ := newRangeSource(t, rs)
	got, err := readRanged(t.Context(), src, int64(len(data)), 4, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	mustSame(t, got, data)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.maxIn < 2 {
		t.Fatalf("at most %d request in flight at once", rs.maxIn)
	}
	t.Logf("up to %d ranges in flight at once, %d requests", rs.maxIn, rs.gets)
}

// flakyRanges fails the first fails opens of a range holding byte at with err.
type flakyRanges struct {
	fakeRanges
	at    int64
	fails int
	err   error

	mu     gosync.Mutex
	opens  int // opens of the chunk at at
	failed int
}

func (f *flakyRanges) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off <= f.at && f.at < off+n {
		f.mu.Lock()
		f.opens++
		fail := f.failed < f.fails
		if fail {
			f.failed++
		}
		f.mu.Unlock()
		if fail {
			return nil, f.err
		}
	}
	return f.fakeRanges.OpenRange(ctx, key, off, n)
}

// TestPoolOpenPolicy: a range that cannot be opened is tried up to Options.Policy's Attempts
// times, not when the policy calls the failure permanent, pausing its Backoff between, whether a
// range stream or the file's own connection opens it.
func TestPoolOpenPolicy(t *testing.T) {
	data := bigBody()[:1<<20]
	errBusy := errors.New("503 busy")
	const chunk = 100_000
	read := func(src store.RangeOpener, opts Options) ([]byte, error) {
		r := NewPool(3, chunk, PoolOptions{}).Open(t.Context(), src, bigKey, int64(len(data)), opts)
		defer r.Close()
		return io.ReadAll(r)
	}
	var mu gosync.Mutex
	var pauses []int
	backoff := func(attempt int) time.Duration {
		mu.Lock()
		pauses = append(pauses, attempt) // only the range holding the flaky byte fails
		mu.Unlock()
		return time.Microsecond
	}

	src := &flakyRanges{fakeRanges: fakeRanges{data: data}, at: 3 * chunk, fails: 2, err: errBusy}
	got, err := read(src, Options{Policy: retry.Policy{Attempts: 3, Backoff: backoff}})
	if err != nil {
		t.Fatalf("two failures in three attempts: %v", err)
	}
	mustSame(t, got, data)
	if src.opens != 3 || len(pauses) != 2 || pauses[0] != 1 || pauses[1] != 2 {
		t.Errorf("%d opens of the flaky range, backoff asked for attempts %v; want 3 opens, pauses [1 2]", src.opens, pauses)
	}

	src = &flakyRanges{fakeRanges: fakeRanges{data: data}, at: 3 * chunk, fails: 3, err: errBusy}
	if _, err := read(src, Options{Policy: retry.Policy{Attempts: 3}}); !errors.Is(err, errBusy) || !strings.Contains(err.Error(), "after 3 attempts") || !strings.Contains(err.Error(), bigKey) {
		t.Errorf("three failures in three attempts: %v", err)
	}

	src = &flakyRanges{fakeRanges: fakeRanges{data: data}, at: 3 * chunk, fails: 1, err: errBusy}
	_, err = read(src, Options{Policy: retry.Policy{Attempts: 5, Permanent: func(err error) bool { return errors.Is(err, errBusy) }}})
	if !errors.Is(err, errBusy) || src.opens != 1 {
		t.Errorf("a permanent failure: %v after %d opens, want it after 1", err, src.opens)
	}

	src = &flakyRanges{fakeRanges: fakeRanges{data: data}, at: 3 * chunk, fails: 1, err: errBusy}
	if _, err := read(src, Options{}); !errors.Is(err, errBusy) || src.opens != 1 {
		t.Errorf("zero Options: %v after %d opens, want one attempt", err, src.opens)
	}
}
