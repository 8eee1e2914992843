package sync_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

func TestSecondRunIsRefusedWithTheHolder(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	held, _, err := sync.AcquireLock(context.Background(), dst, sync.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sync.Run(context.Background(), up.src, dst, sync.Options{Verification: sync.Verification{Keyring: up.keyring}})
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
	run(t, up, dst, sync.Options{Filters: mustParse(t, "arch=amd64"), Max: 1, Lock: sync.LockOptions{Wait: 30 * time.Second}})
	if ok, _ := store.Exists(context.Background(), dst, sync.LockKey); ok {
		t.Error("the lock is still there after the run")
	}
}

func TestStaleLockIsTakenOver(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	_, dst := newTarget(t)
	dead := sync.Lease{ID: "dead", Host: "gone", PID: 1, Started: time.Now().Add(-2 * time.Hour), Expires: time.Now().Add(-time.Hour)}
	data, _ := json.Marshal(dead)
	if _, err := store.PutBytes(context.Background(), dst, sync.LockKey, data, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, up, dst, sync.Options{Filters: mustParse(t, "arch=amd64"), Max: 1})
	if ok, _ := store.Exists(context.Background(), dst, sync.LockKey); ok {
		t.Error("the lock is still there after the run")
	}
	// A live lease is not taken over.
	live := dead
	live.Expires = time.Now().Add(time.Hour)
	data, _ = json.Marshal(live)
	store.PutBytes(context.Background(), dst, sync.LockKey, data, store.PutOptions{})
	_, err := sync.Run(context.Background(), up.src, dst, sync.Options{Verification: sync.Verification{Keyring: up.keyring}})
	var locked *sync.LockedError
	if !errors.As(err, &locked) || locked.Holder.ID != "dead" {
		t.Fatalf("a live lease was not respected: %v", err)
	}
}

func TestLostLeaseCancelsTheRun(t *testing.T) {
	_, dst := newTarget(t)
	l, ctx, err := sync.AcquireLock(context.Background(), dst, sync.LockOptions{TTL: 300 * time.Millisecond})
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
			store.PutBytes(context.Background(), dst, sync.LockKey, other, store.PutOptions{})
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
	data, err := store.ReadAll(context.Background(), dst, sync.LockKey, 0)
	if err != nil || !strings.Contains(string(data), `"other"`) {
		t.Errorf("the other run's lock was removed: %s %v", data, err)
	}
}

// TestInterruptedRunReleasesTheLock cancels a run mid-transfer (as SIGINT does): nothing is
// published, the lock is released, and the next run completes.
func TestInterruptedRunReleasesTheLock(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	ctx, cancel := context.WithCancel(context.Background())
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
	_, err := sync.Run(ctx, up.src, dst, sync.Options{Filters: mustParse(t, "release=noble", "arch=amd64"), Max: 1, Verification: sync.Verification{Keyring: up.keyring}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want a cancellation, got %v", err)
	}
	for p := range tree(t, dir) {
		if strings.HasPrefix(p, "streams/") {
			t.Errorf("metadata published by an interrupted run: %s", p)
		}
	}
	if ok, _ := store.Exists(context.Background(), dst, sync.LockKey); ok {
		t.Error("the interrupted run left its lock")
	}
	up.stream.SetOverride(victim, nil)
	run(t, up, dst, sync.Options{Filters: mustParse(t, "release=noble", "arch=amd64"), Max: 1})
	checkVerbatim(t, up, tree(t, dir))
}

func TestDeadHolderOnThisHostIsTakenOver(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	_, dst := newTarget(t)
	// A process that has exited: its pid is free.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	lease := sync.Lease{ID: "killed", Host: host, PID: cmd.Process.Pid, Started: time.Now(), Expires: time.Now().Add(time.Hour)}
	data, _ := json.Marshal(lease)
	store.PutBytes(context.Background(), dst, sync.LockKey, data, store.PutOptions{})
	run(t, up, dst, sync.Options{Filters: mustParse(t, "arch=amd64"), Max: 1})

	// The same lease from another host is respected until it expires.
	lease.Host = "another-host"
	data, _ = json.Marshal(lease)
	store.PutBytes(context.Background(), dst, sync.LockKey, data, store.PutOptions{})
	_, err := sync.Run(context.Background(), up.src, dst, sync.Options{Verification: sync.Verification{Keyring: up.keyring}})
	var locked *sync.LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("a lease from another host was taken over: %v", err)
	}
}
