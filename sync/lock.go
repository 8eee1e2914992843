package sync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// LockKey is the lease lock object that keeps one writer per target.
const LockKey = ".ssmirror/lock"

// Lock defaults.
const (
	DefaultLockTTL  = 10 * time.Minute
	MinLockTTL      = time.Second // shorter leases cannot be renewed reliably
	lockPollEvery   = 2 * time.Second
	lockRenewFactor = 3 // renew when a third of the lease is gone
)

// ErrLockLost is the cause a run is cancelled with when its lease was taken by another run
// (after this one failed to renew it in time).
var ErrLockLost = errors.New("the target's lock was taken over by another run")

// Lease is what the lock object records about its holder.
type Lease struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
}

func (l Lease) String() string {
	return fmt.Sprintf("host %s, pid %d, since %s, lease until %s", l.Host, l.PID,
		l.Started.Format(time.RFC3339), l.Expires.Format(time.RFC3339))
}

// LockedError says another run holds the target.
type LockedError struct {
	Target string
	Holder Lease
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is locked by another ssmirror run (%s); it is released when that run ends, or taken over once the lease expires", e.Target, e.Holder)
}

// LockOptions configure the lease.
type LockOptions struct {
	// TTL is how long a lease lasts without renewal (default DefaultLockTTL). A run renews its
	// lease while it works; a lease whose holder died is taken over once expired.
	TTL time.Duration
	// Wait is how long to wait for another run's lock before giving up (0: do not wait).
	Wait time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// TargetLock is a held lease.
type TargetLock struct {
	dst      store.Store
	lease    Lease
	tookOver bool // the lock was taken over from a holder that never released it
	opts     LockOptions
	stop     chan struct{}
	done     chan struct{}
}

// AcquireLock takes the target's lease lock, waiting up to opts.Wait for another holder, taking
// over a lease that expired. The returned context is cancelled with ErrLockLost if the lease is
// lost; Release gives the lock back.
func AcquireLock(ctx context.Context, dst store.Store, opts LockOptions) (*TargetLock, context.Context, error) {
	if opts.TTL <= 0 {
		opts.TTL = DefaultLockTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ce, ok := dst.(store.CreateExcluder)
	if !ok {
		return nil, nil, fmt.Errorf("%s cannot create objects exclusively, so it cannot be locked", store.Describe(dst))
	}
	host, _ := os.Hostname()
	var idb [8]byte
	rand.Read(idb[:])
	lease := Lease{ID: hex.EncodeToString(idb[:]), Host: host, PID: os.Getpid(), Started: opts.Now().UTC()}
	deadline := opts.Now().Add(opts.Wait)
	tookOver := false
	for {
		lease.Expires = opts.Now().Add(opts.TTL).UTC()
		data, _ := json.Marshal(lease)
		_, err := ce.CreateExclusive(ctx, LockKey, data, store.PutOptions{Size: int64(len(data)), ContentType: "application/json", CacheControl: "no-store"})
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrExist) {
			return nil, nil, fmt.Errorf("taking the lock: %w", err)
		}
		holder, rerr := readLease(ctx, dst)
		switch {
		case errors.Is(rerr, store.ErrNotExist):
			continue // released meanwhile
		case rerr != nil:
			return nil, nil, rerr
		case opts.Now().After(holder.Expires) || holderDead(holder, host):
			// The holder died (or stalled past its lease): take over. Delete only the lease we
			// read, then race for the create like anyone else.
			if cur, err := readLease(ctx, dst); err == nil && cur.ID == holder.ID {
				if err := dst.Delete(ctx, LockKey); err != nil {
					return nil, nil, fmt.Errorf("taking over the expired lock (%s): %w", holder, err)
				}
			}
			tookOver = true
			continue
		case opts.Now().Before(deadline):
			select {
			case <-ctx.Done():
				return nil, nil, context.Cause(ctx)
			case <-time.After(min(lockPollEvery, time.Until(deadline)+time.Millisecond)):
			}
			continue
		default:
			return nil, nil, &LockedError{Target: store.Describe(dst), Holder: holder}
		}
	}
	l := &TargetLock{dst: dst, lease: lease, tookOver: tookOver, opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	runCtx, cancel := context.WithCancelCause(ctx)
	go l.renew(runCtx, cancel)
	return l, runCtx, nil
}

// TookOver reports whether the lock was taken over from a holder that never released it: a
// run killed or stalled, which may have left temporary files or incomplete uploads behind.
func (l *TargetLock) TookOver() bool { return l.tookOver }

// Lease is the lease held.
func (l *TargetLock) Lease() Lease { return l.lease }

// renew extends the lease while the run works; if another run took it, the run is cancelled.
func (l *TargetLock) renew(ctx context.Context, cancel context.CancelCauseFunc) {
	defer close(l.done)
	t := time.NewTicker(l.opts.TTL / lockRenewFactor)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, err := readLease(ctx, l.dst)
		if err != nil || cur.ID != l.lease.ID {
			if err == nil || errors.Is(err, store.ErrNotExist) {
				cancel(ErrLockLost)
				return
			}
			continue // a passing read error: try again at the next tick
		}
		l.lease.Expires = l.opts.Now().Add(l.opts.TTL).UTC()
		data, _ := json.Marshal(l.lease)
		store.PutBytes(ctx, l.dst, LockKey, data, store.PutOptions{ContentType: "application/json", CacheControl: "no-store"})
	}
}

// Release stops renewing and deletes the lock if it is still this run's. It works even when the
// run's context was cancelled (SIGINT, SIGTERM).
func (l *TargetLock) Release() error {
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cur, err := readLease(ctx, l.dst)
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("releasing the lock: %w", err)
	}
	if cur.ID != l.lease.ID {
		return nil // taken over: not ours to delete
	}
	if err := l.dst.Delete(ctx, LockKey); err != nil {
		return fmt.Errorf("releasing the lock: %w", err)
	}
	return nil
}

// holderDead reports whether the lease was taken on this host by a process that no longer
// exists (killed with SIGKILL, say), so its lock need not wait for the lease to expire. Hosts
// are told apart by name: containers and machines sharing one name would defeat this, which
// is why only a missing process on a matching host counts, never a live one.
func holderDead(l Lease, host string) bool {
	if l.Host == "" || l.Host != host || l.PID <= 0 || l.PID == os.Getpid() {
		return false
	}
	err := syscall.Kill(l.PID, 0)
	return errors.Is(err, syscall.ESRCH)
}

func readLease(ctx context.Context, dst store.Store) (Lease, error) {
	data, err := store.ReadAll(ctx, dst, LockKey, 1<<16)
	if err != nil {
		return Lease{}, err
	}
	var l Lease
	if err := json.Unmarshal(data, &l); err != nil {
		// An unreadable lock (a crash mid-write cannot cause one, but be safe): treat as expired.
		return Lease{ID: "unreadable"}, nil
	}
	return l, nil
}
