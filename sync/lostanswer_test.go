package sync_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/faultproxy"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// lostAnswerTrials is how many runs each case of TestLostAnswers makes per server.
const lostAnswerTrials = 3

// TestLostAnswers: a proxy in front of a real S3 server lets the server apply a conditional PUT
// of the lease (taking it, renewing it, giving it back) or of state.json and then drops its
// answer; the SDK sends the PUT again and meets its own write (412). The run must recognise its
// own lease (by its id) and its own state (by its bytes): it succeeds, says nothing of another
// run, and leaves the lock released for the next run. Before, losing the answer to the lease's
// first PUT failed the run with a LockedError naming the run's own PID (exit 75 in the command),
// and the lease shut every other run out until it expired; losing the answer to the state's PUT
// failed the run with ErrStateChanged.
func TestLostAnswers(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	for _, kind := range testserver.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			for _, tc := range []struct {
				name string
				key  string
				nth  int // the PUT of key (from 1) whose answer is lost
			}{
				{"lease taken", sync.LockKey, 1},
				{"lease renewed", sync.LockKey, 2},
				{"state", sync.StateKey, 1},
			} {
				t.Run(tc.name, func(t *testing.T) {
					bad := 0
					for trial := range lostAnswerTrials {
						if !lostAnswerTrial(t, up, kind, tc.key, tc.nth, trial) {
							bad++
						}
					}
					t.Logf("%d of %d trials went wrong", bad, lostAnswerTrials)
				})
			}
		})
	}
}

// lostAnswerTrial runs one sync into a new bucket through a proxy that loses the answer to the
// nth PUT of key, and reports whether everything went right.
func lostAnswerTrial(t *testing.T, up *upstream, kind testserver.Kind, key string, nth, trial int) bool {
	t.Helper()
	srv := testserver.Shared(t, kind)
	bucket := srv.NewBucket(t, t.Name())
	path := regexp.MustCompile("^/" + bucket + "/mirror/" + regexp.QuoteMeta(key) + "(\\?|$)")
	seen := 0
	isPut := func(r *http.Request) bool {
		if r.Method != http.MethodPut || !path.MatchString(r.URL.RequestURI()) {
			return false
		}
		seen++
		return seen == nth
	}
	p, u := startProxy(t, srv.Endpoint, faultproxy.Options{Faults: []faultproxy.Fault{{Kind: faultproxy.LoseAnswer, Rate: 1, Filter: isPut}}})
	opts := s3store.Options{Endpoint: u}
	dst := s3store.New(targettest.Client(t, srv, &opts), bucket, "mirror/", opts)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sopts := sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: up.keyring}, Filters: mustParse(t, "release=noble")}}
	if nth == 2 {
		// A lease short enough that the run renews it before its first fenced write (a Fence
		// renews a lease confirmed more than TTL/20 ago), long enough that the client's resend
		// after the lost answer (its backoff is up to 2 s) comes well within TTL/2.
		sopts.Lock.TTL = 10 * time.Second
	}
	_, err := sync.Run(ctx, up.src, dst, sopts)
	ok := true
	if err != nil {
		var le *sync.LockedError
		t.Errorf("trial %d: the run failed: %v (LockedError: %v, ErrStateChanged: %v)", trial, err, errors.As(err, &le), errors.Is(err, sync.ErrStateChanged))
		ok = false
	}
	if n := p.Stats().Faults[faultproxy.LoseAnswer]; n != 1 {
		t.Errorf("trial %d: %d answers lost, want 1 (the run made fewer than %d PUTs of %s?)", trial, n, nth, key)
		ok = false
	}
	// The next run finds the lock free and the state as this run left it.
	lock, _, err := sync.AcquireLock(ctx, dst, sync.LockOptions{})
	if err != nil {
		t.Errorf("trial %d: the next run cannot take the lock: %v", trial, err)
		return false
	}
	if err := lock.Release(); err != nil {
		t.Errorf("trial %d: %v", trial, err)
	}
	st, err := sync.LoadState(ctx, dst)
	if err != nil || len(st.Held) == 0 {
		t.Errorf("trial %d: the state after the run: %d versions held, %v", trial, len(st.Held), err)
		ok = false
	}
	if err != nil && strings.Contains(err.Error(), "another") {
		ok = false
	}
	return ok
}
