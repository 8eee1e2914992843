package sync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	gosync "sync"
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
	lockRenewFactor = 3       // renew when a third of the lease is gone
	maxLeaseSize    = 1 << 16 // a lock object larger than this is not a lease
)

// ErrLockLost is the cause a run is cancelled with, and the error every fenced write fails with,
// once its lease was taken by another run (after this one failed to renew it in time).
var ErrLockLost = errors.New("the target's lock was taken over by another run")

// errReleased fences the writes of a run after it released its lock.
var errReleased = errors.New("the target's lock was released")

// Fencing: how a run that lost its lease is kept from writing.
//
// The lease is one object (LockKey) written only by compare-and-swap (store.Swapper: If-Match on
// its ETag on S3, an flock-guarded compare-and-rename in a directory). Taking it, taking it over,
// renewing it and releasing it are each a swap on the version this run read, so of two runs that
// race, exactly one write lands and the other learns it lost. A run is "fenced": before every
// write that readers or the next run see (metadata objects, state.json, deletions) it checks,
// with TargetLock.Fence, that the lease is still its own — by a conditional renewal unless one
// succeeded within the last freshFor — and that less than half the TTL passed since that renewal
// was sent, by the monotonic clock, the wall clock and CLOCK_BOOTTIME (which, unlike the
// monotonic clock, keeps counting while a VM is suspended). state.json itself is also written
// conditionally on the version this run read.
//
// The residual window, honestly: a check is not the write. A writer paused (SIGSTOP, VM suspend,
// a GC pause) after Fence passed and before its request reaches the store, for longer than the
// rest of its lease, while another run takes over and writes, can still land that one write
// afterwards. Fence bounds how stale the check can be (less than TTL/2 by this process's clocks),
// so the pause has to fall in that gap of microseconds to milliseconds and outlast about half the
// TTL; a write already sent, or delayed in the network for that long, is the same case. S3 has no
// conditional write across two objects, so closing it entirely would need the store to check the
// lease on every write. Clock skew between hosts matters only for when a waiting run considers a
// lease expired: a waiter whose clock runs ahead takes over early, and the holder, fenced, then
// stops writing at its next check, with the same one-write window.

// Lease is what the lock object records about its holder.
type Lease struct {
	ID   string `json:"id"`
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// BootID (/proc/sys/kernel/random/boot_id), PIDNamespace (/proc/self/ns/pid) and ProcStart
	// (the process's start time in clock ticks after boot) prove where PID is meaningful: a PID
	// is checked only by a process of the same boot of the same kernel in the same PID
	// namespace, and a PID reused by a new process is told apart by its start time. Empty when
	// unknown (not Linux, /proc of another namespace): then the lease is never taken over before
	// it expires.
	BootID       string    `json:"boot_id,omitempty"`
	PIDNamespace string    `json:"pid_namespace,omitempty"`
	ProcStart    uint64    `json:"proc_start,omitempty"`
	Started      time.Time `json:"started"`
	Expires      time.Time `json:"expires"`
	// TTLSeconds is the holder's lease length: a waiter that sees the lease unchanged for that
	// long by its own monotonic clock considers it expired, whatever the holder's wall clock said.
	TTLSeconds float64 `json:"ttl_seconds,omitempty"`
	// Released is set when the holder gave the lock back; the object stays (it is replaced, never
	// deleted, so that no delete can remove a newer holder's lease: the pinned MinIO ignores
	// If-Match on DeleteObject and deletes whatever is there; versitygw honours it).
	Released bool `json:"released,omitempty"`
	// LastSuccess is when a run last finished its work on the target (published and collected):
	// set by the run that succeeded when it releases the lock, and carried over by each later
	// lease, so the record costs no request of its own and survives failed runs.
	LastSuccess *time.Time `json:"last_success,omitempty"`
}

func (l Lease) String() string {
	s := fmt.Sprintf("host %s, pid %d, since %s, lease until %s", l.Host, l.PID,
		l.Started.Format(time.RFC3339), l.Expires.Format(time.RFC3339))
	if l.Released {
		s += ", released"
	}
	return s
}

// ttl is the holder's lease length, or def when the lease does not say. A length beyond what a
// time.Duration holds (no ssmirror writes one) is the longest there is, never a wrapped-around
// negative one that would make the lease look watched long enough already.
func (l Lease) ttl(def time.Duration) time.Duration {
	ns := l.TTLSeconds * float64(time.Second)
	switch {
	case !(ns > 0):
		return def
	case ns >= math.MaxInt64: // 2⁶³ as a float64: every smaller float64 fits
		return math.MaxInt64
	}
	return time.Duration(ns)
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
	// Wait is how long to wait for another holder before giving up (0: do not wait).
	Wait time.Duration
	// Now is the clock (default time.Now). Tests inject one; time.Now's monotonic reading is
	// used when there is one.
	Now func() time.Time
	// Log is told when a renewal fails (nil: nothing is logged). Run and GC pass their own.
	Log *slog.Logger
	// onWait, when set, is called once, when the lock is found held and the wait begins (a
	// fan-out lets its other targets go on without this one meanwhile).
	onWait func()
	// self is the process identity recorded in the lease (default: this process's).
	self *process
}

// TargetLock is a held lease.
type TargetLock struct {
	dst      store.Target
	opts     LockOptions
	self     process
	tookOver bool // the lock was taken over from a holder that never released it
	cancel   context.CancelCauseFunc
	stop     chan struct{}
	done     chan struct{}
	release  gosync.Once

	mu      gosync.Mutex // guards what follows, and orders the lease's writes
	lease   Lease
	tag     string // the lock object's version as this run last wrote it
	renewed stamp  // when the last successful write of the lease was sent
	lost    error  // ErrLockLost (wrapped) once lost, errReleased once released
	// succeeded: the run finished its work (Succeeded); Release records when.
	succeeded bool
}

var lockPut = store.PutOptions{ContentType: "application/json", CacheControl: "no-store"}

// AcquireLock takes the target's lease lock, waiting up to opts.Wait for another holder. A lease
// is free when it was released, when it expired (its expiry passed by this clock, or it stayed
// unchanged for its whole TTL while watched), or when its holder provably died: same host, boot,
// and PID namespace as this process, and its PID gone or reused. It is taken with a swap on the
// version read, so of racing runs exactly one wins. The returned context is cancelled with
// ErrLockLost if the lease is lost; Release gives the lock back.
func AcquireLock(ctx context.Context, dst store.Target, opts LockOptions) (*TargetLock, context.Context, error) {
	if opts.TTL <= 0 {
		opts.TTL = DefaultLockTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	self := currentProcess()
	if opts.self != nil {
		self = *opts.self
	}
	var idb [16]byte
	rand.Read(idb[:])
	lease := Lease{
		ID: hex.EncodeToString(idb[:]), Host: self.host, PID: self.pid,
		BootID: self.bootID, PIDNamespace: self.pidNS, ProcStart: self.start,
		Started: opts.Now().UTC(), TTLSeconds: opts.TTL.Seconds(),
	}
	l := &TargetLock{dst: dst, opts: opts, self: self, stop: make(chan struct{}), done: make(chan struct{})}
	deadline := opts.Now().Add(opts.Wait)
	var watched string  // the tag of the lease being waited for
	var since time.Time // when it was first seen
	for {
		data, tag, err := dst.ReadTagged(ctx, LockKey, maxLeaseSize)
		exists := err == nil
		var holder Lease
		switch {
		case errors.Is(err, store.ErrNotExist):
			tag = ""
		case err != nil:
			return nil, nil, fmt.Errorf("reading the lock: %w", err)
		default:
			holder = parseLease(data)
		}
		now := opts.Now()
		if tag != watched {
			watched, since = tag, now
		}
		if !exists || holder.Released || now.After(holder.Expires) ||
			now.Sub(since) >= holder.ttl(opts.TTL) || holderGone(holder, self) {
			sent := l.stamp()
			lease.Expires = sent.wall.Add(opts.TTL).UTC()
			lease.LastSuccess = holder.LastSuccess
			newTag, err := dst.Swap(ctx, LockKey, marshalLease(lease), tag, lockPut)
			if err != nil {
				// The write may have landed with its answer lost (and the client's resend then
				// met it: 412): the lease there is this run's if it carries this run's id,
				// which no other run writes.
				curTag, mine := ownLease(ctx, dst, lease.ID)
				switch {
				case mine:
					newTag = curTag
				case errors.Is(err, store.ErrPrecondition):
					continue // another run changed it first: look again
				default:
					return nil, nil, fmt.Errorf("taking the lock: %w", err)
				}
			}
			l.lease, l.tag, l.renewed = lease, newTag, sent
			l.tookOver = exists && !holder.Released
			break
		}
		if !now.Before(deadline) {
			return nil, nil, &LockedError{Target: store.Describe(dst), Holder: holder}
		}
		if opts.onWait != nil {
			opts.onWait()
			opts.onWait = nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, context.Cause(ctx)
		case <-time.After(min(lockPollEvery, deadline.Sub(now)+time.Millisecond)):
		}
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	l.cancel = cancel
	go l.renewLoop(runCtx)
	return l, runCtx, nil
}

// ownLease reads the lock and reports whether it is the unreleased lease of id, and its version.
func ownLease(ctx context.Context, dst store.Target, id string) (string, bool) {
	cur, tag, err := dst.ReadTagged(ctx, LockKey, maxLeaseSize)
	if err != nil {
		return "", false
	}
	l := parseLease(cur)
	return tag, l.ID == id && !l.Released
}

// TookOver reports whether the lock was taken over from a holder that never released it: a
// run killed or stalled, which may have left temporary files or incomplete uploads behind.
func (l *TargetLock) TookOver() bool { return l.tookOver }

// Lease is the lease held.
func (l *TargetLock) Lease() Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lease
}

// renewLoop renews the lease every third of its TTL while the run works; a lease found taken
// cancels the run with ErrLockLost (in Renew).
func (l *TargetLock) renewLoop(ctx context.Context) {
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
		err := l.Renew(ctx)
		switch {
		case errors.Is(err, ErrLockLost):
			l.opts.Log.Warn("the target's lock was lost: the run stops", "target", store.Describe(l.dst), "error", err)
			return
		case err != nil && ctx.Err() == nil:
			// A passing failure (the network, the store): try again at the next tick; Fence
			// refuses writes meanwhile once the last renewal is too old.
			l.opts.Log.Warn("could not renew the target's lock; trying again", "target", store.Describe(l.dst), "error", err,
				"next_try_in", l.opts.TTL/lockRenewFactor)
		}
	}
}

// Renew extends the lease with a swap on the version this run last wrote. If that version is
// gone, the lease is re-read: still this run's (an earlier renewal landed though its answer was
// lost), it is renewed on the version read; another run's, the lease is lost: the run's context
// is cancelled with ErrLockLost and Renew returns it.
func (l *TargetLock) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	sent := l.stamp()
	next := l.lease
	next.Expires = sent.wall.Add(l.opts.TTL).UTC()
	tag, err := l.swapOwn(ctx, next)
	switch {
	case err == nil:
		l.lease, l.tag, l.renewed = next, tag, sent
		return nil
	case errors.Is(err, ErrLockLost):
		l.lost = err
		l.cancel(err)
		return err
	default:
		return fmt.Errorf("renewing the lock on %s: %w", store.Describe(l.dst), err)
	}
}

// swapOwn writes lease over the lock if the lock is still this run's; l.mu must be held. It fails
// with ErrLockLost (wrapped, naming the new holder) when another run has it.
func (l *TargetLock) swapOwn(ctx context.Context, lease Lease) (string, error) {
	data := marshalLease(lease)
	tag, err := l.dst.Swap(ctx, LockKey, data, l.tag, lockPut)
	if !errors.Is(err, store.ErrPrecondition) {
		return tag, err
	}
	cur, curTag, rerr := l.dst.ReadTagged(ctx, LockKey, maxLeaseSize)
	if errors.Is(rerr, store.ErrNotExist) {
		return "", fmt.Errorf("%w (the lock object is gone)", ErrLockLost)
	}
	if rerr != nil {
		return "", rerr
	}
	holder := parseLease(cur)
	if holder.ID != l.lease.ID || holder.Released {
		return "", fmt.Errorf("%w (now %s)", ErrLockLost, holder)
	}
	// Only this run writes its ID, and it holds l.mu: a second failure means another run won.
	tag, err = l.dst.Swap(ctx, LockKey, data, curTag, lockPut)
	if errors.Is(err, store.ErrPrecondition) {
		return "", fmt.Errorf("%w (taken while renewing)", ErrLockLost)
	}
	return tag, err
}

// freshFor is how recent a renewal must be for Fence to trust it without another request.
func (l *TargetLock) freshFor() time.Duration { return min(l.opts.TTL/20, 2*time.Second) }

// Fence returns nil only if the lease is provably this run's now: a renewal (made now unless one
// succeeded within freshFor) found it unchanged, and less than half the TTL has passed since that
// renewal was sent, by every clock. Call it right before each write that readers or the next
// run see; when it fails, write nothing. A nil lock (no locking) always passes.
func (l *TargetLock) Fence(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	lost, age := l.lost, l.stamp().since(l.renewed)
	l.mu.Unlock()
	if lost != nil {
		return lost
	}
	if age >= l.freshFor() {
		if err := l.Renew(ctx); err != nil {
			return err
		}
	}
	l.mu.Lock()
	age = l.stamp().since(l.renewed)
	l.mu.Unlock()
	if age >= l.opts.TTL/2 {
		return fmt.Errorf("the lease on %s was last confirmed %s ago, too close to its %s lifetime to write safely", store.Describe(l.dst), age.Round(time.Millisecond), l.opts.TTL)
	}
	return nil
}

// Succeeded records that the run finished its work: Release then stamps the lease with the
// time (Lease.LastSuccess).
func (l *TargetLock) Succeeded() {
	l.mu.Lock()
	l.succeeded = true
	l.mu.Unlock()
}

// Release stops renewing and marks the lease released, by a swap on the version this run last
// wrote, so that a lease another run took meanwhile is left alone. It works even when the run's
// context was cancelled (SIGINT, SIGTERM). After it, Fence fails.
func (l *TargetLock) Release() error {
	var err error
	l.release.Do(func() {
		close(l.stop)
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		defer l.cancel(errReleased)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.lost != nil {
			return // taken over: not ours to release
		}
		rel := l.lease
		rel.Released = true
		rel.Expires = l.opts.Now().UTC()
		if l.succeeded {
			t := rel.Expires
			rel.LastSuccess = &t
		}
		_, serr := l.swapOwn(ctx, rel)
		l.lost = errReleased
		if serr != nil && !errors.Is(serr, ErrLockLost) {
			err = fmt.Errorf("releasing the lock on %s: %w", store.Describe(l.dst), serr)
		}
	})
	return err
}

func marshalLease(l Lease) []byte {
	data, _ := json.Marshal(l)
	return data
}

// parseLease reads a lock object. An unreadable one (a crash mid-write cannot cause one, but be
// safe) counts as expired.
func parseLease(data []byte) Lease {
	var l Lease
	if err := json.Unmarshal(data, &l); err != nil {
		return Lease{ID: "unreadable"}
	}
	return l
}

// stamp is one instant by three clocks.
type stamp struct {
	mono time.Time     // the lock's clock, with its monotonic reading when it has one
	wall time.Time     // the same without the monotonic reading
	boot time.Duration // CLOCK_BOOTTIME (0 where there is none)
}

func (l *TargetLock) stamp() stamp {
	t := l.opts.Now()
	return stamp{mono: t, wall: t.Round(0), boot: bootTime()}
}

// since is how long passed from s to now by the clock that says most: the monotonic clock stops
// while a VM is suspended, the wall clock can be stepped back.
func (now stamp) since(s stamp) time.Duration {
	d := max(now.mono.Sub(s.mono), now.wall.Sub(s.wall))
	if now.boot > 0 && s.boot > 0 {
		d = max(d, now.boot-s.boot)
	}
	return d
}

// fence checks that the run still holds its lease (TargetLock.Fence) before a write that
// readers or the next run see; what names the write for the message.
func fence(ctx context.Context, lock *TargetLock, what string) error {
	if err := lock.Fence(ctx); err != nil {
		return fmt.Errorf("not %s: %w", what, err)
	}
	return nil
}
