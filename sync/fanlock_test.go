package sync_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

// TestFanOutLockWaitHoldsNoOtherTarget: in a fan-out with --lock-timeout, a target whose lock
// another run holds does not hold the other targets back: they transfer and publish while it
// waits; once its lock is free it fetches what it needs on its own and publishes too.
func TestFanOutLockWaitHoldsNoOtherTarget(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dirA, a := newTarget(t)
	dirB, b := newTarget(t)
	held, _, err := sync.AcquireLock(t.Context(), b, sync.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			if err := held.Release(); err != nil {
				t.Error(err)
			}
		}
	}
	defer release()
	opts := sync.Options{
		Selection:  sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1, Verification: sync.Verification{Keyring: up.keyring}},
		Publishing: sync.Publishing{Lock: sync.LockOptions{Wait: 2 * time.Minute}},
	}
	type result struct {
		fr  *sync.FanOutReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		fr, err := sync.RunTargets(t.Context(), up.src, []store.Target{a, b}, opts)
		done <- result{fr, err}
	}()
	index := filepath.Join(dirA, filepath.FromSlash(streamtest.SignedIndexPath))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(index); err == nil {
			break
		}
		if time.Now().After(deadline) {
			release()
			<-done
			t.Fatal("target A did not publish while B's lock was held: the fan-out waited for B")
		}
		select {
		case r := <-done:
			t.Fatalf("the fan-out ended while B's lock was held: %v", r.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := os.Stat(filepath.Join(dirB, filepath.FromSlash(streamtest.SignedIndexPath))); err == nil {
		t.Fatal("B published while another run held its lock")
	}
	release()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	treeA, treeB := tree(t, dirA), tree(t, dirB)
	checkVerbatim(t, up, treeB)
	if len(treeA) != len(treeB) {
		t.Errorf("A holds %d files, B %d", len(treeA), len(treeB))
	}
	ra, rb := r.fr.Targets[0].Report, r.fr.Targets[1].Report
	if ra.Fetched == 0 || rb.Fetched != ra.Fetched {
		t.Errorf("fetched %d into A and %d into B; want B to fetch on its own what A fetched", ra.Fetched, rb.Fetched)
	}
}
