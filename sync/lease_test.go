package sync

import (
	"context"
	"errors"
	"fmt"
	gosync "sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/memstore"
)

// These tests drive the lease with a fake clock (testing/synctest): no sleeps, no flakes.

// partitioned is a store whose conditional writes fail while cut is set, as a holder cut off
// from the bucket sees it.
type partitioned struct {
	*memstore.Store
	cut atomic.Bool
}

var errCut = errors.New("connection refused")

func (p *partitioned) Swap(ctx context.Context, key string, data []byte, tag string, opts store.PutOptions) (string, error) {
	if p.cut.Load() {
		return "", fmt.Errorf("swap %s: %w", key, errCut)
	}
	return p.Store.Swap(ctx, key, data, tag, opts)
}

func readLeaseFrom(t *testing.T, s store.Target) Lease {
	t.Helper()
	data, err := store.ReadAll(t.Context(), s, LockKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	return parseLease(data)
}

// TestLeaseLostWhilePartitioned: a holder that cannot renew stops passing Fence before its lease
// runs out; another run takes the lease once it expired; when the first comes back, its renewal
// finds the lease taken: its context is cancelled with ErrLockLost, every Fence fails, and its
// Release leaves the new holder's lease alone.
func TestLeaseLostWhilePartitioned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		mem := memstore.New()
		pa := &partitioned{Store: mem}
		const ttl = 30 * time.Second
		a, actx, err := AcquireLock(ctx, pa, LockOptions{TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := AcquireLock(ctx, mem, LockOptions{TTL: ttl}); !errors.As(err, new(*LockedError)) {
			t.Fatalf("second AcquireLock of a live lease = %v, want a LockedError", err)
		}
		if err := a.Fence(ctx); err != nil {
			t.Fatalf("Fence right after taking the lock: %v", err)
		}

		// The holder renews every third of the TTL.
		time.Sleep(ttl/3 + time.Second)
		synctest.Wait()
		if got, want := readLeaseFrom(t, mem).Expires, time.Now().Add(-time.Second).Add(ttl).UTC(); !got.Equal(want) {
			t.Errorf("lease after one renewal expires at %s, want %s", got, want)
		}

		// Cut off, it cannot confirm the lease: Fence refuses at once (no write without a fresh
		// renewal), long before the lease expires.
		pa.cut.Store(true)
		time.Sleep(5 * time.Second)
		if err := a.Fence(ctx); !errors.Is(err, errCut) {
			t.Errorf("Fence while cut off = %v, want the renewal's failure", err)
		}

		// Another run waits for the expiry, then takes over.
		began := time.Now()
		b, _, err := AcquireLock(ctx, mem, LockOptions{TTL: ttl, Wait: time.Minute})
		if err != nil {
			t.Fatalf("taking over the expired lease: %v", err)
		}
		if waited := time.Since(began); waited < 10*time.Second {
			t.Errorf("the lease was taken over after %s, before it expired", waited)
		}
		if !b.TookOver() {
			t.Error("TookOver() = false for a lease that was never released")
		}

		// The first holder comes back: its next renewal finds the lease taken.
		pa.cut.Store(false)
		time.Sleep(ttl / 3)
		synctest.Wait()
		if cause := context.Cause(actx); !errors.Is(cause, ErrLockLost) {
			t.Errorf("the old holder's context: cause %v, want ErrLockLost", cause)
		}
		if err := a.Fence(ctx); !errors.Is(err, ErrLockLost) {
			t.Errorf("the old holder's Fence = %v, want ErrLockLost", err)
		}
		if err := a.Release(); err != nil {
			t.Errorf("the old holder's Release: %v", err)
		}
		if got := readLeaseFrom(t, mem); got.ID != b.Lease().ID || got.Released {
			t.Errorf("after the old holder's Release the lease is %+v, want the new holder's, held", got)
		}
		if err := b.Fence(ctx); err != nil {
			t.Errorf("the new holder's Fence: %v", err)
		}
		if err := b.Release(); err != nil {
			t.Fatal(err)
		}
		if got := readLeaseFrom(t, mem); got.ID != b.Lease().ID || !got.Released {
			t.Errorf("after Release the lease is %+v, want it marked released", got)
		}
		if err := b.Fence(ctx); err == nil {
			t.Error("Fence passed after Release")
		}
	})
}

// TestFenceRenewsAfterAClockJump: a holder whose clock shows more than half the TTL since its
// last renewal (a VM resumed from suspend) does not trust that renewal: Fence renews first.
func TestFenceRenewsAfterAClockJump(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		mem := memstore.New()
		var mu gosync.Mutex
		var skip time.Duration // added to the holder's clock
		now := func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return time.Now().Add(skip)
		}
		l, _, err := AcquireLock(ctx, mem, LockOptions{TTL: time.Minute, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		// The clock jumps by 40s (a suspended VM resumes): the lease looks 40s old, past
		// TTL/2, so Fence renews before it lets a write through, and the renewal is fresh.
		mu.Lock()
		skip = 40 * time.Second
		mu.Unlock()
		before := readLeaseFrom(t, mem).Expires
		if err := l.Fence(ctx); err != nil {
			t.Fatalf("Fence after a jump with the lease still ours: %v", err)
		}
		if after := readLeaseFrom(t, mem).Expires; !after.After(before) {
			t.Errorf("Fence did not renew a lease last renewed 40s ago (expiry %s, then %s)", before, after)
		}
	})
}

// TestStampSinceTakesTheLargestClock: the age of a renewal is the largest of the monotonic,
// wall and boot clocks' readings, so a suspended VM (monotonic stopped) or a stepped-back wall
// clock never makes it look younger than it is.
func TestStampSinceTakesTheLargestClock(t *testing.T) {
	t0 := time.Now()
	s := stamp{mono: t0, wall: t0.Round(0), boot: time.Hour}
	for _, tc := range []struct {
		name string
		now  stamp
		want time.Duration
	}{
		{"all agree", stamp{t0.Add(time.Second), t0.Round(0).Add(time.Second), time.Hour + time.Second}, time.Second},
		{"suspended: monotonic stopped, boot clock ran", stamp{t0.Add(time.Second), t0.Round(0).Add(time.Second), time.Hour + 5*time.Minute}, 5 * time.Minute},
		{"wall clock stepped forward", stamp{t0.Add(time.Second), t0.Round(0).Add(time.Hour), time.Hour + time.Second}, time.Hour},
		{"wall clock stepped back", stamp{t0.Add(2 * time.Second), t0.Round(0).Add(-time.Hour), time.Hour + time.Second}, 2 * time.Second},
		{"no boot clock", stamp{t0.Add(time.Second), t0.Round(0).Add(time.Second), 0}, time.Second},
	} {
		if got := tc.now.since(s); got != tc.want {
			t.Errorf("%s: since = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestLeaseWithAFutureExpiryIsTakenOverAfterItsTTL: a lease written by a holder whose clock was
// years ahead (expiry in 2099) is not a lock for ever: a waiter that sees it unchanged for the
// lease's TTL by its own clock takes it over.
func TestLeaseWithAFutureExpiryIsTakenOverAfterItsTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		mem := memstore.New()
		stuck := Lease{ID: "stuck", Host: "elsewhere", PID: 7, Started: time.Now(), Expires: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), TTLSeconds: 20}
		if _, err := mem.Swap(ctx, LockKey, marshalLease(stuck), "", store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := AcquireLock(ctx, mem, LockOptions{Wait: 10 * time.Second}); !errors.As(err, new(*LockedError)) {
			t.Fatalf("AcquireLock waiting less than the lease's TTL = %v, want a LockedError", err)
		}
		began := time.Now()
		l, _, err := AcquireLock(ctx, mem, LockOptions{Wait: time.Minute})
		if err != nil {
			t.Fatalf("AcquireLock waiting more than the lease's TTL: %v", err)
		}
		if waited := time.Since(began); waited < 20*time.Second {
			t.Errorf("taken over after %s, less than the lease's 20s TTL", waited)
		}
		l.Release()
	})
}

// TestLeaseWithAHugeTTLIsNotTakenOverAtFirstSight: a lease whose ttl_seconds is more than a
// time.Duration holds (a tampered or foreign lock object) counts as the longest lease there is,
// not as one already watched for its whole TTL: a live holder's lease with such a TTL and a
// future expiry is not taken over, however many times it is looked at. Before, the seconds
// overflowed into a negative duration and the lease was taken over at first sight.
func TestLeaseWithAHugeTTLIsNotTakenOverAtFirstSight(t *testing.T) {
	for _, ttl := range []float64{1e10, 9.3e9, 1e300} {
		t.Run(fmt.Sprint(ttl), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				mem := memstore.New()
				held := Lease{ID: "held", Host: "elsewhere", PID: 7, Started: time.Now(), Expires: time.Now().Add(time.Hour), TTLSeconds: ttl}
				if _, err := mem.Swap(ctx, LockKey, marshalLease(held), "", store.PutOptions{}); err != nil {
					t.Fatal(err)
				}
				for _, wait := range []time.Duration{0, time.Minute} {
					if l, _, err := AcquireLock(ctx, mem, LockOptions{Wait: wait}); !errors.As(err, new(*LockedError)) {
						if l != nil {
							l.Release()
						}
						t.Fatalf("AcquireLock (waiting %s) of a live lease with ttl_seconds %g = %v, want a LockedError", wait, ttl, err)
					}
				}
				if got := (Lease{TTLSeconds: ttl}).ttl(time.Minute); got <= 0 {
					t.Errorf("ttl of ttl_seconds %g = %s, want the longest duration", ttl, got)
				}
			})
		})
	}
}

// TestRacingTakeoversInMemory: many runs taking over one expired lease at once: one wins.
func TestRacingTakeoversInMemory(t *testing.T) {
	ctx := t.Context()
	for trial := range 20 {
		mem := memstore.New()
		expired := Lease{ID: "dead", Host: "gone", Expires: time.Now().Add(-time.Minute)}
		if _, err := mem.Swap(ctx, LockKey, marshalLease(expired), "", store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		winners := racingTakeovers(t, mem, 10)
		if winners != 1 {
			t.Errorf("trial %d: %d winners", trial, winners)
		}
	}
}

func racingTakeovers(t *testing.T, s store.Target, racers int) int {
	t.Helper()
	var wg gosync.WaitGroup
	var won []*TargetLock
	var mu gosync.Mutex
	start := make(chan struct{})
	for range racers {
		wg.Go(func() {
			<-start
			l, _, err := AcquireLock(t.Context(), s, LockOptions{})
			switch {
			case err == nil:
				mu.Lock()
				won = append(won, l)
				mu.Unlock()
			case !errors.As(err, new(*LockedError)):
				t.Errorf("racing AcquireLock: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	for _, l := range won {
		l.Release()
	}
	return len(won)
}

// lostAnswer is a store that writes a swap but then loses its answer once, as a connection
// reset after the server stored the object does.
type lostAnswer struct {
	*memstore.Store
	drop atomic.Bool
}

func (s *lostAnswer) Swap(ctx context.Context, key string, data []byte, tag string, opts store.PutOptions) (string, error) {
	newTag, err := s.Store.Swap(ctx, key, data, tag, opts)
	if err == nil && s.drop.CompareAndSwap(true, false) {
		return "", errors.New("connection reset by peer")
	}
	return newTag, err
}

// TestRenewalWhoseAnswerWasLost: a renewal that landed though its answer was lost leaves the
// holder with an outdated tag; the next renewal finds the lease still its own and goes on,
// rather than believing it lost.
func TestRenewalWhoseAnswerWasLost(t *testing.T) {
	ctx := t.Context()
	s := &lostAnswer{Store: memstore.New()}
	l, lctx, err := AcquireLock(ctx, s, LockOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	s.drop.Store(true)
	if err := l.Renew(ctx); err == nil || errors.Is(err, ErrLockLost) {
		t.Fatalf("renewal whose answer was lost = %v, want a passing error", err)
	}
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("the renewal after it: %v", err)
	}
	if err := l.Fence(ctx); err != nil {
		t.Errorf("Fence: %v", err)
	}
	if lctx.Err() != nil {
		t.Errorf("the run was cancelled: %v", context.Cause(lctx))
	}
}

// TestTakingWhoseAnswerWasLost: a lease written though the answer to the write was lost is
// this run's; AcquireLock goes on with it instead of failing and leaving it to expire.
func TestTakingWhoseAnswerWasLost(t *testing.T) {
	ctx := t.Context()
	s := &lostAnswer{Store: memstore.New()}
	s.drop.Store(true)
	l, _, err := AcquireLock(ctx, s, LockOptions{})
	if err != nil {
		t.Fatalf("AcquireLock whose write landed but whose answer was lost: %v", err)
	}
	if err := l.Fence(ctx); err != nil {
		t.Errorf("Fence: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if got := readLeaseFrom(t, s.Store); !got.Released || got.ID != l.Lease().ID {
		t.Errorf("after Release: %+v", got)
	}
}

// TestLastSuccessCarriedOver: a run that succeeded stamps its lease on release; a later run's
// lease carries the stamp over, and a run that did not succeed leaves it as it was.
func TestLastSuccessCarriedOver(t *testing.T) {
	ctx := t.Context()
	mem := memstore.New()
	clock := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	opts := LockOptions{TTL: time.Minute, Now: func() time.Time { return clock }}

	l, _, err := AcquireLock(ctx, mem, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := readLeaseFrom(t, mem).LastSuccess; got != nil {
		t.Fatalf("a new target's lease says a run succeeded at %v", got)
	}
	l.Succeeded()
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	first := readLeaseFrom(t, mem).LastSuccess
	if first == nil || !first.Equal(clock) {
		t.Fatalf("after a successful run LastSuccess = %v, want %v", first, clock)
	}

	clock = clock.Add(time.Hour)
	l, _, err = AcquireLock(ctx, mem, opts) // a run that fails: no Succeeded
	if err != nil {
		t.Fatal(err)
	}
	if got := readLeaseFrom(t, mem).LastSuccess; got == nil || !got.Equal(*first) {
		t.Errorf("while the next run holds the lock LastSuccess = %v, want %v carried over", got, first)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if got := readLeaseFrom(t, mem).LastSuccess; got == nil || !got.Equal(*first) {
		t.Errorf("after a failed run LastSuccess = %v, want %v unchanged", got, first)
	}
}

// TestStaleFormsNotRemovedAfterLeaseLost: the deletion of metadata forms upstream stopped
// offering is a write readers see, fenced like the others: a run whose lease another run took
// deletes nothing.
func TestStaleFormsNotRemovedAfterLeaseLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		mem := memstore.New()
		l, _, err := AcquireLock(ctx, mem, LockOptions{TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		// Another run takes the lease over.
		_, tag, err := mem.ReadTagged(ctx, LockKey, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mem.Swap(ctx, LockKey, marshalLease(Lease{ID: "newer", Expires: time.Now().Add(time.Hour)}), tag, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // past the fence's renewal interval: it must look again
		const form = "streams/v1/index.json.gpg"
		if _, err := store.PutBytes(ctx, mem, form, []byte("sig"), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		st := NewState()
		st.Published[form] = Published{Size: 3}
		r := newRun(mem, mem, Options{})
		r.lock, r.st, r.cat = l, st, &Catalogue{IndexBase: "streams/v1/index"}
		err = r.removeStaleForms(ctx, nil)
		if !errors.Is(err, ErrLockLost) {
			t.Errorf("removing a stale form after the lease was lost: %v, want ErrLockLost", err)
		}
		if ok, _ := store.Exists(ctx, mem, form); !ok {
			t.Error("a run that lost its lease deleted a published metadata form")
		}
	})
}
