package sync_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/sync"
)

// cutOff is a target whose conditional writes fail while cut is set: the lease of a run using it
// cannot be renewed, as for a run paused or partitioned from the store.
type cutOff struct {
	*dirstore.Store
	cut atomic.Bool
}

func (c *cutOff) Swap(ctx context.Context, key string, data []byte, tag string, opts store.PutOptions) (string, error) {
	if c.cut.Load() {
		return "", errors.New("connection refused")
	}
	return c.Store.Swap(ctx, key, data, tag, opts)
}

// TestRunThatLostItsLeaseWritesNothing: a run stuck mid-transfer while it cannot renew its
// lease loses it to a newer run, which publishes; when the stuck run goes on, it publishes no
// metadata, saves no state (not even on its failure path) and deletes nothing.
func TestRunThatLostItsLeaseWritesNothing(t *testing.T) {
	bubble(t, runThatLostItsLeaseWritesNothing) // fake time: waiting out the lease takes none
}

func runThatLostItsLeaseWritesNothing(t *testing.T) {
	dir, dst := newTarget(t)
	// The runs that are meant to succeed have a lease long enough for a loaded machine (a fence
	// refuses to write when half the lease has gone since the last renewal); only the old run's
	// lease is short.
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}, Publishing: sync.Publishing{Lock: sync.LockOptions{TTL: 20 * time.Second, Wait: 30 * time.Second}}}
	run(t, newUpstreamInproc(t, smallConfig("20250701"), nil), dst, opts)

	up := newUpstreamInproc(t, smallConfig("20250701", "20250718"), nil)
	var victim string
	for _, it := range up.stream.Items {
		if strings.HasPrefix(it.Path, "noble/amd64/20250718") && strings.HasSuffix(it.Path, "squashfs") {
			victim = it.Path
		}
	}
	reached, resume := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	up.stream.SetOverride(victim, func(r io.Reader) io.Reader {
		if first.CompareAndSwap(false, true) { // the old run's request only
			close(reached)
			<-resume
		}
		return r
	})
	var resumeOnce gosync.Once
	release := func() { resumeOnce.Do(func() { close(resume) }) }
	defer release()
	old := &cutOff{Store: dst}
	type result struct {
		rep *sync.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := sync.Run(t.Context(), up.src, old, sync.Options{Selection: sync.Selection{Filters: opts.Filters, Max: 1, Verification: sync.Verification{Keyring: up.keyring}}, Publishing: sync.Publishing{Lock: sync.LockOptions{TTL: time.Second}}})
		done <- result{rep, err}
	}()
	<-reached
	old.cut.Store(true)

	// The newer run waits out the lease, takes over and publishes.
	run(t, up, dst, opts)
	before := tree(t, dir)
	state, err := store.ReadAll(t.Context(), dst, sync.StateKey, 0)
	if err != nil {
		t.Fatal(err)
	}

	old.cut.Store(false)
	release()
	res := <-done
	t.Logf("the run that lost its lease: %v", res.err)
	if !errors.Is(res.err, sync.ErrLockLost) {
		t.Errorf("the run that lost its lease ended with %v, want ErrLockLost", res.err)
	}
	if res.rep != nil && len(res.rep.MetadataWritten)+len(res.rep.Deleted) != 0 {
		t.Errorf("the run that lost its lease wrote %v and deleted %v", res.rep.MetadataWritten, res.rep.Deleted)
	}
	after := tree(t, dir)
	for p, data := range before {
		if got, ok := after[p]; !ok || !bytes.Equal(got, data) {
			t.Errorf("%s changed or vanished after the run that lost its lease went on", p)
		}
	}
	if now, _ := store.ReadAll(t.Context(), dst, sync.StateKey, 0); !bytes.Equal(now, state) {
		t.Error("the state was overwritten by the run that lost its lease")
	}
}

// TestStateIsSavedOnlyOverTheVersionRead: of two runs that read the same state, the second to
// save fails with ErrStateChanged and changes nothing.
func TestStateIsSavedOnlyOverTheVersionRead(t *testing.T) {
	_, dst := newTarget(t)
	ctx := t.Context()
	for _, existing := range []bool{false, true} {
		if existing {
			st := sync.NewState()
			st.Objects["seed"] = sync.Object{Size: 1}
			if err := sync.SaveState(ctx, dst, st); err != nil {
				t.Fatal(err)
			}
		}
		first, err := sync.LoadState(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		stale, err := sync.LoadState(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		first.Objects["first"] = sync.Object{Size: 2}
		if err := sync.SaveState(ctx, dst, first); err != nil {
			t.Fatalf("existing=%v: first save: %v", existing, err)
		}
		saved, _ := store.ReadAll(ctx, dst, sync.StateKey, 0)
		stale.Objects["stale"] = sync.Object{Size: 3}
		if err := sync.SaveState(ctx, dst, stale); !errors.Is(err, sync.ErrStateChanged) {
			t.Errorf("existing=%v: a save over a version another run replaced = %v, want ErrStateChanged", existing, err)
		}
		if now, _ := store.ReadAll(ctx, dst, sync.StateKey, 0); !bytes.Equal(now, saved) {
			t.Errorf("existing=%v: the stale save changed the state", existing)
		}
		// The run that saved can save again.
		first.Objects["again"] = sync.Object{Size: 4}
		if err := sync.SaveState(ctx, dst, first); err != nil {
			t.Errorf("existing=%v: second save of the same run: %v", existing, err)
		}
		dst.Delete(ctx, sync.StateKey)
	}
}
