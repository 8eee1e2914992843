package sync

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	gosync "sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
)

// noRateGate makes every large file want range streams from its start, however fast loopback
// brings it.
func noRateGate(t *testing.T) {
	old := rangeFastEnough
	rangeFastEnough = 0
	t.Cleanup(func() { rangeFastEnough = old })
}

// TestRunRanged: a whole run over HTTP with a 40 MiB squashfs fetches it in ranges at the
// defaults (more than one request) and the mirror holds it intact; with RangeStreams 1 it
// takes one request; and the run's streams are all back in its pool afterwards.
func TestRunRanged(t *testing.T) {
	noRateGate(t)
	cfg := streamtest.Config{
		Releases:     []string{"noble"},
		Arches:       []string{"amd64"},
		Versions:     []string{"20250718"},
		Kernels:      []string{"ga"},
		SquashfsSize: 40 << 20,
		Seed:         3,
	}
	s, err := streamtest.Generate(cfg, testkeys.Signer(t, testkeys.SigningKey))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	src, err := httpstore.New(srv.Client(), srv.URL, httpstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var squashfs string
	for p, size := range s.Content {
		if size == 40<<20 {
			squashfs = p
		}
	}
	if squashfs == "" {
		t.Fatal("no 40 MiB file in the generated stream")
	}

	for _, c := range []struct {
		streams  int
		requests int
	}{{0, -1}, {1, 1}} {
		t.Run(fmt.Sprintf("streams=%d", c.streams), func(t *testing.T) {
			s.ResetRequests()
			dir := t.TempDir()
			dst, err := dirstore.New(dir, dirstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{
				Selection: Selection{Verification: Verification{Keyring: testkeys.LoadKeyring(t, testkeys.Keyring)}},
				Tuning:    Tuning{RangeStreams: c.streams},
			}
			rep, err := Run(t.Context(), src, dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Fetched != len(s.Content) {
				t.Errorf("fetched %d files, want %d", rep.Fetched, len(s.Content))
			}
			if n := s.Requests(squashfs); c.requests > 0 && n != c.requests || c.requests < 0 && n < 2 {
				t.Errorf("%d requests for %s, want %d (-1: several)", n, squashfs, c.requests)
			}
			checkContent(t, dir, s)
		})
	}

	// The pool: DefaultRangeFiles × DefaultRangeStreams streams shared by every large file;
	// one more file than DefaultRangeFiles still gets a reader (a stream once one is free), and
	// every stream is back in the pool after Close.
	run := newRun(src, nil, Options{})
	streams, chunk := run.opts.RangeStreams, run.opts.RangeChunk
	pool := run.hub.ranged()
	if streams != DefaultRangeStreams || chunk != DefaultRangeChunk || pool.Slots() != DefaultRangeFiles*streams {
		t.Fatalf("defaults: %d streams of %d bytes, pool %d", streams, chunk, pool.Slots())
	}
	f := Fetch{Path: squashfs, Size: 40 << 20}
	var readers []io.ReadCloser
	for i := range DefaultRangeFiles + 1 {
		r := run.hub.openRanged(t.Context(), src, f)
		if r == nil {
			t.Fatalf("no ranged reader %d for a 40 MiB file over HTTP", i+1)
		}
		readers = append(readers, r)
	}
	for _, r := range readers {
		if _, err := io.ReadFull(r, make([]byte, 10<<20)); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if n := pool.Free(); n != pool.Slots() {
		t.Errorf("%d of %d streams back in the pool after Close", n, pool.Slots())
	}
	if r := run.hub.openRanged(t.Context(), src, Fetch{Path: squashfs, Size: 4*chunk - 1}); r != nil {
		t.Error("ranged reader for a file shorter than four chunks")
	}
	dirSrc, err := dirstore.New(t.TempDir(), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := run.hub.openRanged(t.Context(), dirSrc, f); r != nil {
		t.Error("ranged reader for a directory source")
	}
}

// TestRangeSlotFreedGoesToWaitingFile: with the run's range streams all held by one file, a
// second large file starts on its own connection, and the streams the first frees on Close go
// to it (issue 13: before, a file starting while the budget was taken got one connection for
// its whole life while the others' streams sat idle). Deterministic: a worker gives its slot
// back, and the pool hands it on, before the first reader's Close returns.
func TestRangeSlotFreedGoesToWaitingFile(t *testing.T) {
	noRateGate(t)
	data := make([]byte, 24<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(data))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	src, err := httpstore.New(srv.Client(), srv.URL, httpstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rn := newRun(src, nil, Options{Tuning: Tuning{RangeFiles: 1, RangeStreams: 2}})
	ctx := t.Context()
	a := rn.hub.openRanged(ctx, src, Fetch{Path: "a.squashfs", Size: int64(len(data))})
	if a == nil {
		t.Fatal("no ranged reader for the first file")
	}
	defer a.Close()
	if _, err := io.ReadFull(a, make([]byte, 3<<20)); err != nil {
		t.Fatal(err)
	}
	b := rn.hub.openRanged(ctx, src, Fetch{Path: "b.squashfs", Size: int64(len(data))})
	if b == nil {
		t.Fatal("a large file starting while the range streams are taken got no ranged reader: one connection for its whole life")
	}
	defer b.Close()
	a.Close()
	s, ok := b.(interface{ Streams() int })
	if !ok {
		t.Fatalf("%T does not say how many streams it holds", b)
	}
	if n := s.Streams(); n != 2 {
		t.Fatalf("the second file holds %d range streams after the first closed, want both (2)", n)
	}
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%d bytes differ from the object's %d", len(got), len(data))
	}
}

// TestSlowLinkMoreFilesAtOnce: on a link found slow, range stream slots no large file wants carry
// more small files at once than Concurrency (issue 13: when connections, not bandwidth, limit).
// The upstream holds each content request until Concurrency+1 are in flight (or 3 s pass, which
// the old code, at most Concurrency at once, always waited out); the mirror must be intact.
func TestSlowLinkMoreFilesAtOnce(t *testing.T) {
	noRateGate(t) // every connection counts as slow
	s, err := streamtest.Generate(streamtest.Config{
		Releases: []string{"noble", "jammy"},
		Arches:   []string{"amd64"},
		Versions: []string{"20250718"},
		Kernels:  []string{"ga"},
		Seed:     5,
	}, testkeys.Signer(t, testkeys.SigningKey))
	if err != nil {
		t.Fatal(err)
	}
	const concurrency = 2
	var c contentInFlight
	var once gosync.Once
	enough := make(chan struct{})
	srv := httptest.NewServer(c.handler(s, func(w http.ResponseWriter, r *http.Request, inner http.Handler, n int) {
		if n > concurrency {
			once.Do(func() { close(enough) })
		}
		select {
		case <-enough:
		case <-time.After(3 * time.Second):
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	slowLinkRun(t, s, srv, Tuning{Concurrency: concurrency, RangeConnections: 2})
	if maxIn := c.most(); maxIn <= concurrency {
		t.Errorf("at most %d content requests in flight, want more than Concurrency (%d)", maxIn, concurrency)
	}
}

// TestNoteRateJudgesTheLink: a file fetched whole on one connection marks the link slow (slots
// may then carry more files at once) only when it came slower than rangeFastEnough while its
// reader waited for the connection; a file that came slowly because its reader took its time
// (hashing and writing on a loaded machine) says nothing about the link.
func TestNoteRateJudgesTheLink(t *testing.T) {
	for _, c := range []struct {
		name              string
		readWait, between time.Duration
		slow              bool
	}{
		{"slow reader", 0, time.Second, false},
		{"slow connection", time.Second, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				run := newRun(nil, nil, Options{})
				pool := run.hub.ranged()
				f := Fetch{Path: "img", Size: 4 << 20}
				start := time.Now()
				tb := &timedBody{ReadCloser: io.NopCloser(&pacedReader{r: bytes.NewReader(make([]byte, f.Size)), per: c.readWait})}
				buf := make([]byte, 1<<20)
				for {
					_, err := tb.Read(buf)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					time.Sleep(c.between)
				}
				run.hub.noteRate(f, start, tb)
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				giveBack, lent := pool.Borrow(ctx) // lends a slot only on a link found slow
				if lent {
					giveBack()
				}
				if lent != c.slow {
					t.Errorf("link found slow: %v, want %v (%s)", lent, c.slow, c.name)
				}
			})
		})
	}
}

// pacedReader takes per of the (bubble's) clock for each read.
type pacedReader struct {
	r   io.Reader
	per time.Duration
}

func (p *pacedReader) Read(b []byte) (int, error) {
	time.Sleep(p.per)
	return p.r.Read(b)
}

// checkContent fails t unless every content file of s is in dir with upstream's bytes.
func checkContent(t *testing.T, dir string, s *streamtest.Stream) {
	t.Helper()
	for p := range s.Content {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		want, err := io.ReadAll(s.OpenContent(p))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from upstream's %d", p, len(got), len(want))
		}
	}
}

// TestNoteRateSmallFilesTogether: files smaller than a chunk find the link slow together: four
// slow ones and at least half of those seen (over a far link, each costs a round trip), never
// one now and then among fast ones (a loaded machine stalls a small file on loopback too).
func TestNoteRateSmallFilesTogether(t *testing.T) {
	for _, c := range []struct {
		name      string
		slowEvery int // every n-th small file waits 30 ms; 0: none
		files     int
		foundSlow bool
	}{
		{"every file slow", 1, 4, true},
		{"three slow files", 1, 3, false},
		{"one in three slow", 3, 30, false},
		{"one in two slow", 2, 30, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				run := newRun(nil, nil, Options{})
				pool := run.hub.ranged()
				for i := range c.files {
					f := Fetch{Path: fmt.Sprintf("small-%d", i), Size: 64 << 10}
					start := time.Now()
					var wait time.Duration
					if c.slowEvery > 0 && i%c.slowEvery == 0 {
						wait = 30 * time.Millisecond
					}
					tb := &timedBody{ReadCloser: io.NopCloser(&pacedReader{r: bytes.NewReader(make([]byte, f.Size)), per: wait})}
					if _, err := io.Copy(io.Discard, tb); err != nil {
						t.Fatal(err)
					}
					run.hub.noteRate(f, start, tb)
				}
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				giveBack, lent := pool.Borrow(ctx)
				if lent {
					giveBack()
				}
				if lent != c.foundSlow {
					t.Errorf("link found slow: %v, want %v", lent, c.foundSlow)
				}
			})
		})
	}
}
