package sync

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	gosync "sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/store/memstore"
)

// syncBuffer is a bytes.Buffer a logger may write to from the renewal goroutine.
type syncBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLeaseRenewalFailureLogged: a renewal that fails (the store unreachable) is logged as a
// warning with its error where it happens, by the renewal loop; a lease lost to another run is
// logged too. Before, both were dropped silently and the run only learned of them at its next
// fenced write.
func TestLeaseRenewalFailureLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		mem := memstore.New()
		pa := &partitioned{Store: mem}
		var out syncBuffer
		log := slog.New(slog.NewTextHandler(&out, nil))
		const ttl = 30 * time.Second
		l, lctx, err := AcquireLock(ctx, pa, LockOptions{TTL: ttl, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		pa.cut.Store(true)
		time.Sleep(ttl/lockRenewFactor + time.Second) // one renewal, failing
		synctest.Wait()
		got := out.String()
		if !strings.Contains(got, "level=WARN") || !strings.Contains(got, "renew") || !strings.Contains(got, errCut.Error()) {
			t.Fatalf("a failed renewal logged %q; want a warning naming the error %q", got, errCut)
		}

		// Another run takes the lease once it expired; the next renewal finds it lost.
		time.Sleep(ttl)
		b, _, err := AcquireLock(ctx, mem, LockOptions{TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Release()
		pa.cut.Store(false)
		time.Sleep(ttl / lockRenewFactor)
		synctest.Wait()
		if !errors.Is(context.Cause(lctx), ErrLockLost) {
			t.Fatalf("run context: %v, want ErrLockLost", context.Cause(lctx))
		}
		if got := out.String(); !strings.Contains(got, "lock was lost") {
			t.Errorf("a lost lease logged %q; want it said", got)
		}
	})
}
