package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	gosync "sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/memstore"
)

// These tests pin what the source reads (whole files, ranges, metadata) try again, how often and
// with which pauses (sourcePolicy), on the fake clock of testing/synctest: no real sleeps.

var errBusy = errors.New("503 Service Unavailable")

// flakySource is a memory store whose opens of a key fail: transient[key] times with errBusy,
// then succeed; or always with fail[key]. It counts the opens of each key (ranges by offset).
type flakySource struct {
	*memstore.Store
	mu        gosync.Mutex
	transient map[string]int
	fail      map[string]error
	opens     map[string]int
}

func newFlakySource(t *testing.T, key string, data []byte) *flakySource {
	t.Helper()
	m := memstore.New()
	if _, err := store.PutBytes(t.Context(), m, key, data, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return &flakySource{Store: m, transient: map[string]int{}, fail: map[string]error{}, opens: map[string]int{}}
}

func (s *flakySource) failure(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens[id]++
	if err := s.fail[id]; err != nil {
		return fmt.Errorf("open %s: %w", id, err)
	}
	if s.opens[id] <= s.transient[id] {
		return fmt.Errorf("open %s: %w", id, errBusy)
	}
	return nil
}

func (s *flakySource) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens[id]
}

func (s *flakySource) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if err := s.failure(key); err != nil {
		return nil, err
	}
	return s.Store.Open(ctx, key, offset)
}

func (s *flakySource) OpenRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := s.failure(fmt.Sprint(offset)); err != nil {
		return nil, err
	}
	rc, err := s.Store.Open(ctx, key, offset)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, length), rc}, nil
}

// waitedAbout checks a fake-clock wait against fetchBackoff's nominal pauses before attempts
// 2..n+1 (0.5s, 1s, 2s, …), each jittered by ±25%.
func waitedAbout(t *testing.T, got time.Duration, n int) {
	t.Helper()
	var nominal time.Duration
	for i := range n {
		nominal += min(500*time.Millisecond<<i, 8*time.Second)
	}
	if got < nominal*3/4 || got > nominal*5/4 {
		t.Errorf("waited %v, want %v ±25%%", got, nominal)
	}
}

func TestReadMetadataRetries(t *testing.T) {
	const key = "streams/v1/index.json"
	for _, tc := range []struct {
		name      string
		transient int
		fail      error
		opens     int
		ok        bool
	}{
		{"four failures then success", 4, nil, 5, true},
		{"five failures", 5, nil, 5, false},
		{"not found", 0, store.ErrNotExist, 1, false},
		{"refused", 0, store.ErrInvalidKey, 1, false},
		{"too slow", 0, ErrTooSlow, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := newFlakySource(t, key, []byte(`{"index":{}}`))
				src.transient[key], src.fail[key] = tc.transient, tc.fail
				start := time.Now()
				data, err := readMetadata(t.Context(), src, key, 1<<20)
				if tc.ok != (err == nil) || (tc.ok && string(data) != `{"index":{}}`) {
					t.Fatalf("got %q, %v", data, err)
				}
				if n := src.count(key); n != tc.opens {
					t.Errorf("%d opens, want %d", n, tc.opens)
				}
				waitedAbout(t, time.Since(start), tc.opens-1)
				if err != nil && (strings.Contains(err.Error(), "attempts") || !strings.Contains(err.Error(), key)) {
					t.Errorf("error %q: want the store's own, naming the key", err)
				}
			})
		})
	}
	t.Run("cancelled while waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			src := newFlakySource(t, key, nil)
			src.transient[key] = 10
			cause := errors.New("lease lost")
			ctx, cancel := context.WithCancelCause(t.Context())
			time.AfterFunc(time.Second, func() { cancel(cause) }) // during the second pause
			_, err := readMetadata(ctx, src, key, 1<<20)
			if err != cause || src.count(key) != 2 {
				t.Errorf("got %v after %d opens, want the cause after 2", err, src.count(key))
			}
		})
	})
}

// rangedKey is the object TestRangedChunkRetries reads in ranges.
const rangedKey = "big/squashfs"

// TestRangedChunkRetries: a chunk of a ranged read is tried under sourcePolicy, as a whole file is.
func TestRangedChunkRetries(t *testing.T) {
	noRateGate(t)
	const size, chunk = 40_000, 10_000
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	for _, tc := range []struct {
		name      string
		transient int
		fail      error
		opens     int
		errWants  []string // nil: the read succeeds
	}{
		{"four failures then success", 4, nil, 5, nil},
		{"five failures", 5, nil, 5, []string{rangedKey, "bytes 20000-29999", "503", "(after 5 attempts)"}},
		{"not found", 0, store.ErrNotExist, 1, []string{rangedKey, "bytes 20000-29999", "not exist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := newFlakySource(t, rangedKey, data)
				src.transient["20000"], src.fail["20000"] = tc.transient, tc.fail
				rn := newRun(src, nil, Options{Tuning: Tuning{RangeChunk: chunk, RangeStreams: 3}})
				r := rn.hub.openRanged(t.Context(), src, Fetch{Path: rangedKey, Size: size})
				got, err := io.ReadAll(r)
				r.Close()
				switch {
				case tc.errWants == nil && (err != nil || !bytes.Equal(got, data)):
					t.Fatalf("read %d bytes, %v", len(got), err)
				case tc.errWants != nil && err == nil:
					t.Fatal("no error")
				}
				for _, want := range tc.errWants {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				if n := src.count("20000"); n != tc.opens {
					t.Errorf("%d opens of the chunk, want %d", n, tc.opens)
				}
				if n := src.count("10000"); n != 1 {
					t.Errorf("%d opens of a healthy chunk, want 1", n)
				}
			})
		})
	}
}

// transferOne brings f into rn's target by the transfer's one path (a delivery of one dest, as
// Run's) and returns the target's transfer error.
func transferOne(ctx context.Context, rn *run, f Fetch) error {
	rn.plan, rn.st = &Plan{Fetch: []Fetch{f}}, NewState()
	d := newDest(ctx, rn)
	rn.hub.deliver([]*dest{d}, false)
	return d.err()
}

// TestTransferOneRetries: a whole file's open is tried maxOpenAttempts times, each retry logged,
// and not at all again when the source says it is missing; a download whose checksum is wrong
// is tried maxChecksumAttempts times.
func TestTransferOneRetries(t *testing.T) {
	const key = "noble/amd64/20250718/root.tgz"
	data := []byte("a root file system, or its stand-in")
	sum := sha256.Sum256(data)
	f := Fetch{Path: key, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	for _, tc := range []struct {
		name      string
		transient int
		fail      error
		opens     int
		errWants  []string
	}{
		{"four failures then success", 4, nil, 5, nil},
		{"five failures", 5, nil, 5, []string{"fetching " + key, "503", "(after 5 attempts)"}},
		{"not found", 0, store.ErrNotExist, 1, []string{"fetching " + key, "not exist"}},
		{"bad checksum", -1, nil, 3, []string{"fetching " + key, "sha256", "(after 3 attempts)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := f
				if tc.transient < 0 {
					// Every download comes out wrong: tried maxChecksumAttempts times.
					f.SHA256 = strings.Repeat("0", 64)
				}
				src := newFlakySource(t, key, data)
				src.transient[key], src.fail[key] = tc.transient, tc.fail
				dst := memstore.New()
				var log bytes.Buffer
				rn := newRun(src, dst, Options{Hooks: Hooks{Log: slog.New(slog.NewTextHandler(&log, nil)), Progress: &Progress{}}})
				start := time.Now()
				err := transferOne(t.Context(), rn, f)
				switch {
				case tc.errWants == nil && err != nil:
					t.Fatal(err)
				case tc.errWants != nil && err == nil:
					t.Fatal("no error")
				}
				for _, want := range tc.errWants {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				if n := src.count(key); n != tc.opens {
					t.Errorf("%d opens, want %d", n, tc.opens)
				}
				if tc.transient >= 0 {
					waitedAbout(t, time.Since(start), tc.opens-1)
				}
				if tc.transient < 0 && !errors.Is(err, store.ErrChecksum) {
					t.Errorf("error %v is not a checksum mismatch", err)
				}
				if n := strings.Count(log.String(), "fetch failed; trying again"); n != tc.opens-1 {
					t.Errorf("%d retries logged, want %d:\n%s", n, tc.opens-1, log.String())
				}
				if _, err := dst.Stat(t.Context(), key); (err == nil) != (tc.errWants == nil) {
					t.Errorf("target has the file: %v, want %v", err == nil, tc.errWants == nil)
				}
			})
		})
	}
}
