package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	gosync "sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/store/retry"
)

var errTransient = errors.New("503 Service Unavailable")

// failing returns an op that fails with errs[i] on call i (nil once past the end) and counts calls.
func failing(calls *int, errs ...error) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= len(errs) {
			return errs[*calls-1]
		}
		return nil
	}
}

func TestDoTriesAgainUntilSuccess(t *testing.T) {
	var calls int
	var waits, notified []int
	p := retry.Policy{
		Attempts: 5,
		Backoff:  func(n int) time.Duration { waits = append(waits, n); return 0 },
		Notify:   func(n int, err error) { notified = append(notified, n) },
	}
	if err := retry.Do(t.Context(), p, failing(&calls, errTransient, errTransient)); err != nil {
		t.Fatal(err)
	}
	if calls != 3 || fmt.Sprint(waits) != "[1 2]" || fmt.Sprint(notified) != "[1 2]" {
		t.Errorf("calls %d, backoffs %v, notified %v; want 3, [1 2], [1 2]", calls, waits, notified)
	}
}

func TestDoBoundsAttempts(t *testing.T) {
	for _, attempts := range []int{0, 1, 2, 5} {
		var calls int
		err := retry.Do(t.Context(), retry.Policy{Attempts: attempts}, func(context.Context) error {
			calls++
			return fmt.Errorf("attempt %d: %w", calls, errTransient)
		})
		want := max(attempts, 1)
		if calls != want {
			t.Errorf("Attempts %d: %d calls, want %d", attempts, calls, want)
		}
		if !errors.Is(err, errTransient) || !strings.Contains(err.Error(), fmt.Sprintf("attempt %d:", want)) {
			t.Errorf("Attempts %d: got %v, want the last attempt's error", attempts, err)
		}
		var re *retry.Error
		switch {
		case want == 1 && errors.As(err, &re):
			t.Errorf("Attempts %d: one attempt's error is wrapped: %v", attempts, err)
		case want > 1 && (!errors.As(err, &re) || re.Attempts != want || !strings.HasSuffix(err.Error(), fmt.Sprintf("(after %d attempts)", want))):
			t.Errorf("Attempts %d: got %v, want it to say after %d attempts", attempts, err, want)
		}
	}
}

func TestDoDoesNotRetryPermanent(t *testing.T) {
	for _, perm := range []error{
		store.ErrNotExist,
		fs.ErrPermission,
		store.ErrInvalidKey,
		store.ErrChecksum,
		store.ErrOverLimit,
		context.Canceled,
		context.DeadlineExceeded,
		retry.Mark(errors.New("x509: certificate signed by unknown authority")),
	} {
		var calls int
		err := retry.Do(t.Context(), retry.Policy{Attempts: 5}, failing(&calls, fmt.Errorf("open k: %w", perm)))
		if calls != 1 || !errors.Is(err, perm) {
			t.Errorf("%v: %d calls, error %v; want 1 call and the error", perm, calls, err)
		}
	}
	// A permanent failure after transient ones stops at once and says how many attempts it took.
	var calls int
	err := retry.Do(t.Context(), retry.Policy{Attempts: 5}, failing(&calls, errTransient, store.ErrNotExist))
	if calls != 2 || !errors.Is(err, store.ErrNotExist) || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("%d calls, error %v; want 2 and not found after 2 attempts", calls, err)
	}
	// The policy's own classification replaces the default.
	calls = 0
	p := retry.Policy{Attempts: 5, Permanent: func(err error) bool { return !errors.Is(err, store.ErrChecksum) }}
	err = retry.Do(t.Context(), p, failing(&calls, store.ErrChecksum, store.ErrChecksum, errTransient))
	if calls != 3 || !errors.Is(err, errTransient) {
		t.Errorf("%d calls, error %v; want 3 and the transient error", calls, err)
	}
}

func TestMark(t *testing.T) {
	if retry.Mark(nil) != nil {
		t.Error("Mark(nil) is not nil")
	}
	base := &fs.PathError{Op: "open", Path: "k", Err: errTransient}
	err := fmt.Errorf("get: %w", retry.Mark(base))
	var pe *fs.PathError
	if !retry.Permanent(err) || !errors.As(err, &pe) || !errors.Is(err, errTransient) || err.Error() != "get: "+base.Error() {
		t.Errorf("marked error %q: permanent %v, chain kept %v", err, retry.Permanent(err), errors.As(err, &pe))
	}
	if retry.Permanent(fmt.Errorf("get: %w", errTransient)) {
		t.Error("an unmarked transient error is permanent")
	}
}

// TestDoWaitsTheBackoff: the pauses are the backoff's, on the (fake) clock.
func TestDoWaitsTheBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var calls int
		p := retry.Policy{Attempts: 4, Backoff: func(n int) time.Duration { return time.Duration(n) * time.Second }}
		err := retry.Do(t.Context(), p, failing(&calls, errTransient, errTransient, errTransient, errTransient))
		if calls != 4 || !errors.Is(err, errTransient) {
			t.Fatalf("%d calls, %v", calls, err)
		}
		if got := time.Since(start); got != 6*time.Second {
			t.Errorf("waited %v, want 1s+2s+3s", got)
		}
	})
}

// TestDoStopsWaitingOnCancel: a cancelled context ends the pause at once, with its cause.
func TestDoStopsWaitingOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("lease lost")
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(time.Minute, func() { cancel(cause) })
		start := time.Now()
		var calls int
		p := retry.Policy{Attempts: 5, Backoff: func(int) time.Duration { return time.Hour }}
		err := retry.Do(ctx, p, failing(&calls, errTransient, errTransient))
		var re *retry.Error
		if calls != 1 || !errors.Is(err, cause) || !errors.As(err, &re) || re.Err != errTransient {
			t.Fatalf("%d calls, %v; want 1 call and the cause", calls, err)
		}
		if want := "lease lost (interrupted while waiting to try again after: 503 Service Unavailable)"; err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
		if got := time.Since(start); got != time.Minute {
			t.Errorf("waited %v, want until the cancel (1m)", got)
		}
		// A context done when the attempt fails: no further attempt, the attempt's own error.
		calls = 0
		err = retry.Do(ctx, retry.Policy{Attempts: 5}, failing(&calls, errTransient))
		if calls != 1 || err != errTransient {
			t.Errorf("done context: %d calls, %v", calls, err)
		}
		if err := retry.Sleep(ctx, time.Hour); err != cause {
			t.Errorf("Sleep on a done context: %v", err)
		}
	})
}

func TestExponential(t *testing.T) {
	b := retry.Exponential(500*time.Millisecond, 8*time.Second)
	for attempt, mid := range map[int]time.Duration{1: 500 * time.Millisecond, 2: time.Second, 3: 2 * time.Second, 4: 4 * time.Second, 5: 8 * time.Second, 6: 8 * time.Second, 100: 8 * time.Second} {
		for range 50 {
			if d := b(attempt); d < mid*3/4 || d > mid*5/4 {
				t.Fatalf("attempt %d: %v, want %v ±25%%", attempt, d, mid)
			}
		}
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[b(3)] = true
	}
	if len(seen) < 2 {
		t.Error("no jitter")
	}
}

// flakyServer answers the first fails GETs and HEADs with 503, then serves body.
type flakyServer struct {
	mu       gosync.Mutex
	fails    int
	requests int
	body     string
	status   int // status of the failures
}

func (f *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	fail := f.requests <= f.fails
	f.mu.Unlock()
	if fail {
		http.Error(w, "busy", f.status)
		return
	}
	http.ServeContent(w, r, "obj", time.Time{}, strings.NewReader(f.body))
}

// TestSource wraps a real HTTP store whose server fails the first requests.
func TestSource(t *testing.T) {
	fs := &flakyServer{body: "hello, ranged world", status: http.StatusServiceUnavailable}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	hs, err := httpstore.New(srv.Client(), srv.URL, httpstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var notified int
	src := retry.NewSource(hs, retry.Policy{Attempts: 3, Notify: func(int, error) { notified++ }})
	if u, ok := src.(interface{ Unwrap() store.Source }); !ok || u.Unwrap() != hs {
		t.Error("no Unwrap to the HTTP store")
	}
	ro, ok := src.(store.RangeOpener)
	if !ok {
		t.Fatal("the wrapper of a RangeOpener is not one")
	}
	read := func(rc io.ReadCloser, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	fs.fails, fs.requests = 2, 0
	if got := read(src.Open(t.Context(), "obj", 7)); got != "ranged world" || fs.requests != 3 || notified != 2 {
		t.Errorf("Open: %q after %d requests, %d notified", got, fs.requests, notified)
	}
	fs.fails, fs.requests = 1, 0
	if got := read(ro.OpenRange(t.Context(), "obj", 7, 6)); got != "ranged" || fs.requests != 2 {
		t.Errorf("OpenRange: %q after %d requests", got, fs.requests)
	}
	fs.fails, fs.requests = 2, 0
	if info, err := src.Stat(t.Context(), "obj"); err != nil || info.Size != int64(len(fs.body)) || fs.requests != 3 {
		t.Errorf("Stat: %+v, %v after %d requests", info, err, fs.requests)
	}
	// Bounded: three attempts, then the last failure.
	fs.fails, fs.requests = 10, 0
	if _, err := src.Open(t.Context(), "obj", 0); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "after 3 attempts") || fs.requests != 3 {
		t.Errorf("Open of an object that keeps failing: %v after %d requests", err, fs.requests)
	}
	// Not found is not tried again.
	fs.fails, fs.requests, fs.status = 10, 0, http.StatusNotFound
	if _, err := src.Open(t.Context(), "obj", 0); !errors.Is(err, store.ErrNotExist) || fs.requests != 1 {
		t.Errorf("Open of a missing object: %v after %d requests", err, fs.requests)
	}
	// A certificate that does not verify is not tried again.
	tlsSrv := httptest.NewTLSServer(fs)
	defer tlsSrv.Close()
	untrusted, err := httpstore.New(&http.Client{}, tlsSrv.URL, httpstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	notified = 0
	src = retry.NewSource(untrusted, retry.Policy{Attempts: 3, Notify: func(int, error) { notified++ }})
	if _, err := src.Open(t.Context(), "obj", 0); err == nil || notified != 0 || strings.Contains(err.Error(), "attempts") {
		t.Errorf("Open from a server whose certificate does not verify: %v after %d retries", err, notified)
	}
	// A store without ranges is wrapped without them.
	if _, ok := retry.NewSource(struct{ store.Source }{hs}, retry.Policy{}).(store.RangeOpener); ok {
		t.Error("the wrapper of a store without ranges offers them")
	}
}
