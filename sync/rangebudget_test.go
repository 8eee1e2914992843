package sync

import (
	"bytes"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
)

// TestRunRanged: a whole run over HTTP with a 40 MiB squashfs fetches it in ranges at the
// defaults (one request per DefaultRangeChunk) and the mirror holds it intact; with RangeStreams 1 it takes one
// request; and the run's buffers are all back in its budget afterwards.
func TestRunRanged(t *testing.T) {
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
	}{{0, (40<<20 + DefaultRangeChunk - 1) / DefaultRangeChunk}, {1, 1}} {
		t.Run(fmt.Sprintf("streams=%d", c.streams), func(t *testing.T) {
			s.ResetRequests()
			dir := t.TempDir()
			dst, err := dirstore.New(dir, dirstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{
				Verification: Verification{Keyring: testkeys.LoadKeyring(t, testkeys.Keyring)},
				RangeStreams: c.streams,
			}
			rep, err := Run(t.Context(), src, dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Fetched != len(s.Content) {
				t.Errorf("fetched %d files, want %d", rep.Fetched, len(s.Content))
			}
			if n := s.Requests(squashfs); n != c.requests {
				t.Errorf("%d requests for %s, want %d", n, squashfs, c.requests)
			}
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
		})
	}

	// The budget: DefaultRangeFiles readers take what is free, a further one falls back to one
	// request, and each gives it all back on Close.
	run := newRun(src, nil, Options{})
	streams, chunk, _ := run.opts.rangeParams()
	budget := run.ranged()
	if streams != DefaultRangeStreams || chunk != DefaultRangeChunk || cap(budget.slots) != DefaultRangeFiles*(streams+1) {
		t.Fatalf("defaults: %d streams of %d bytes, budget %d", streams, chunk, cap(budget.slots))
	}
	f := Fetch{Path: squashfs, Size: 40 << 20}
	var readers []io.ReadCloser
	for i := range DefaultRangeFiles {
		r := run.openRanged(t.Context(), src, f)
		if r == nil {
			t.Fatalf("no ranged reader %d for a 40 MiB file over HTTP", i+1)
		}
		readers = append(readers, r)
	}
	if r := run.openRanged(t.Context(), src, f); r != nil {
		t.Error("one more ranged reader while the budget is taken")
	}
	for _, r := range readers {
		if _, err := io.ReadFull(r, make([]byte, 10<<20)); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if n := len(budget.slots); n != cap(budget.slots) {
		t.Errorf("%d of %d buffers back in the budget after Close", n, cap(budget.slots))
	}
	if r := run.openRanged(t.Context(), src, Fetch{Path: squashfs, Size: 4*chunk - 1}); r != nil {
		t.Error("ranged reader for a file shorter than four chunks")
	}
	dirSrc, err := dirstore.New(t.TempDir(), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := run.openRanged(t.Context(), dirSrc, f); r != nil {
		t.Error("ranged reader for a directory source")
	}
}
