package sync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	gosync "sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/sync"
)

func TestSecondRunIsRefusedWithTheHolder(t *testing.T) {
	bubble(t, secondRunIsRefusedWithTheHolder) // fake time: the wait for the holder takes none
}

func secondRunIsRefusedWithTheHolder(t *testing.T) {
	up := newUpstreamInproc(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	held, _, err := sync.AcquireLock(t.Context(), dst, sync.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: up.keyring}}})
	var locked *sync.LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("want a LockedError, got %v", err)
	}
	host, _ := os.Hostname()
	if locked.Holder.PID != os.Getpid() || locked.Holder.Host != host || !strings.Contains(err.Error(), "pid") || !strings.Contains(err.Error(), "lease until") {
		t.Errorf("the message does not name the holder: %v", err)
	}
	if files := tree(t, dir); len(files) != 0 {
		t.Errorf("the refused run wrote %v", contentPaths(files))
	}
	// Waiting works once the holder releases.
	go func() {
		time.Sleep(300 * time.Millisecond)
		held.Release()
	}()
	run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}, Publishing: sync.Publishing{Lock: sync.LockOptions{Wait: 30 * time.Second}}})
	checkReleased(t, dst)
}

// checkReleased checks that the lock is released: the lease object is never deleted (a delete
// could remove a newer holder's), it is marked released by a conditional write.
func checkReleased(t *testing.T, dst store.Target) {
	t.Helper()
	data, err := store.ReadAll(t.Context(), dst, sync.LockKey, 0)
	if err != nil {
		t.Fatalf("reading the lock after the run: %v", err)
	}
	var l sync.Lease
	if err := json.Unmarshal(data, &l); err != nil || !l.Released {
		t.Errorf("the lock is still held after the run: %s (%v)", data, err)
	}
}

func TestStaleLockIsTakenOver(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	_, dst := newTarget(t)
	dead := sync.Lease{ID: "dead", Host: "gone", PID: 1, Started: time.Now().Add(-2 * time.Hour), Expires: time.Now().Add(-time.Hour)}
	data, _ := json.Marshal(dead)
	if _, err := store.PutBytes(t.Context(), dst, sync.LockKey, data, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}})
	checkReleased(t, dst)
	// A live lease is not taken over.
	live := dead
	live.Expires = time.Now().Add(time.Hour)
	data, _ = json.Marshal(live)
	store.PutBytes(t.Context(), dst, sync.LockKey, data, store.PutOptions{})
	_, err := sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: up.keyring}}})
	var locked *sync.LockedError
	if !errors.As(err, &locked) || locked.Holder.ID != "dead" {
		t.Fatalf("a live lease was not respected: %v", err)
	}
}

func TestLostLeaseCancelsTheRun(t *testing.T) {
	synctest.Test(t, lostLeaseCancelsTheRun) // the renewals and the takeover loop on fake time
}

func lostLeaseCancelsTheRun(t *testing.T) {
	_, dst := newTarget(t)
	l, ctx, err := sync.AcquireLock(t.Context(), dst, sync.LockOptions{TTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Another run takes over (as if this one had stalled past its lease) and, like any run,
	// keeps renewing its lease: a renewal of ours racing with its takeover cannot win for long.
	other, _ := json.Marshal(sync.Lease{ID: "other", Host: "elsewhere", Expires: time.Now().Add(time.Hour)})
	stopOther := make(chan struct{})
	otherDone := make(chan struct{})
	go func() {
		defer close(otherDone)
		for {
			store.PutBytes(t.Context(), dst, sync.LockKey, other, store.PutOptions{})
			select {
			case <-stopOther:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	select {
	case <-ctx.Done():
		if !errors.Is(context.Cause(ctx), sync.ErrLockLost) {
			t.Errorf("cancelled with %v, want ErrLockLost", context.Cause(ctx))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run was not cancelled after losing its lease")
	}
	close(stopOther)
	<-otherDone
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	// Release leaves the other run's lock alone.
	data, err := store.ReadAll(t.Context(), dst, sync.LockKey, 0)
	if err != nil || !strings.Contains(string(data), `"other"`) {
		t.Errorf("the other run's lock was removed: %s %v", data, err)
	}
}

// TestInterruptedRunReleasesTheLock cancels a run mid-transfer (as SIGINT does): nothing is
// published, the lock is released, and the next run completes.
func TestInterruptedRunReleasesTheLock(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	ctx, cancel := context.WithCancel(t.Context())
	var victim string
	for _, it := range up.stream.Items {
		if strings.HasSuffix(it.Path, "squashfs") && strings.HasPrefix(it.Path, "noble/amd64/20250718") {
			victim = it.Path
		}
	}
	up.stream.SetOverride(victim, func(r io.Reader) io.Reader {
		cancel() // interrupt while this file is being served
		return r
	})
	_, err := sync.Run(ctx, up.src, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "release=noble", "arch=amd64"), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want a cancellation, got %v", err)
	}
	for p := range tree(t, dir) {
		if strings.HasPrefix(p, "streams/") {
			t.Errorf("metadata published by an interrupted run: %s", p)
		}
	}
	checkReleased(t, dst)
	up.stream.SetOverride(victim, nil)
	run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "release=noble", "arch=amd64"), Max: 1}})
	checkVerbatim(t, up, tree(t, dir))
}

// lockHolderEnv, set to a directory, makes the test binary a process that takes the lock of
// that directory target, says "held PID" on stdout, and holds the lock until stdin closes.
const lockHolderEnv = "SSMIRROR_TEST_LOCK_HOLDER"

func holdLock(dir string) int {
	dst, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, _, err := sync.AcquireLock(context.Background(), dst, sync.LockOptions{TTL: time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("held %d\n", os.Getpid())
	io.Copy(io.Discard, os.Stdin)
	if err := l.Release(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestRacingTakeoversInADirectory: the same race on a directory target, each racer with a store
// of its own (as separate processes have): one winner per trial.
func TestRacingTakeoversInADirectory(t *testing.T) {
	const trials, racers = 20, 10
	dir, dst := newTarget(t)
	ctx := t.Context()
	var perTrial []int
	for trial := range trials {
		dead := sync.Lease{ID: fmt.Sprintf("dead-%d", trial), Host: "gone", PID: 1, Expires: time.Now().Add(-time.Minute)}
		data, _ := json.Marshal(dead)
		if _, err := store.PutBytes(ctx, dst, sync.LockKey, data, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		var wg gosync.WaitGroup
		var mu gosync.Mutex
		var won []*sync.TargetLock
		start := make(chan struct{})
		for range racers {
			own, err := dirstore.New(dir, dirstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				<-start
				l, _, err := sync.AcquireLock(ctx, own, sync.LockOptions{})
				switch {
				case err == nil:
					mu.Lock()
					won = append(won, l)
					mu.Unlock()
				case !errors.As(err, new(*sync.LockedError)):
					t.Errorf("trial %d: racing AcquireLock: %v", trial, err)
				}
			})
		}
		close(start)
		wg.Wait()
		for _, l := range won {
			l.Release()
		}
		perTrial = append(perTrial, len(won))
		if len(won) != 1 {
			t.Errorf("trial %d: %d of %d racing runs took over the expired lease, want exactly 1", trial, len(won), racers)
		}
	}
	t.Logf("directory: %d trials of %d racing takeovers; winners per trial %v", trials, racers, perTrial)
}
