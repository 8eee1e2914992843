package sync_test

import (
	"context"
	"errors"
	"path"
	"strings"
	gosync "sync"
	"testing"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/memstore"
	"github.com/ssmirror/ssmirror/sync"
)

// TestDirectoryDurabilityOrder records every fsync and every rename a run into a directory
// makes, and checks the order of writes on disk: each content file, the directory holding it
// and every directory above it (whose entries name the directories created on the way) are
// fsynced before the first metadata file or the state is renamed into place. The
// directory store makes content durable in one batch after the transfers (store.Batcher);
// skipping that flush leaves the content files unsynced and fails here.
func TestDirectoryDurabilityOrder(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dst, events := tracedDirectory(t)
	rep := run(t, up, dst, sync.Options{})
	if rep.Fetched == 0 {
		t.Fatal("the run fetched nothing")
	}
	checkDurabilityOrder(t, events(), len(up.stream.Content))
}

// TestFanOutDirectoryDurabilityOrder is TestDirectoryDurabilityOrder for a fan-out run into two
// directories, each file teed to both: in each, the content written through the tee is durable
// before the first metadata file or the state is renamed into place.
func TestFanOutDirectoryDurabilityOrder(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	a, aEvents := tracedDirectory(t)
	b, bEvents := tracedDirectory(t)
	fr, err := sync.RunTargets(t.Context(), up.src, []store.Target{a, b}, sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: up.keyring}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, events := range []func() []traceEvent{aEvents, bEvents} {
		if fr.Targets[i].Report.Fetched == 0 {
			t.Fatalf("target %d: the run fetched nothing", i)
		}
		checkDurabilityOrder(t, events(), len(up.stream.Content))
	}
}

type traceEvent struct{ op, name string }

// tracedDirectory is a directory target recording every fsync and rename it makes.
func tracedDirectory(t *testing.T) (store.Target, func() []traceEvent) {
	var mu gosync.Mutex
	var events []traceEvent
	dst, err := dirstore.New(t.TempDir(), dirstore.Options{Trace: func(op, name string) {
		mu.Lock()
		events = append(events, traceEvent{op, name})
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	return dst, func() []traceEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]traceEvent(nil), events...)
	}
}

// checkDurabilityOrder checks that each content file renamed into place, its directory and
// every directory above it were fsynced before the first metadata file or the state was
// renamed into place, and that want content files were written before it.
func checkDurabilityOrder(t *testing.T, events []traceEvent, want int) {
	t.Helper()
	isMeta := func(key string) bool { return strings.HasPrefix(key, "streams/") || key == sync.StateKey }
	isContent := func(key string) bool { return !isMeta(key) && !strings.HasPrefix(key, ".ssmirror/") }
	synced := map[string]bool{}
	var content []string
	published := false
	for i, e := range events {
		switch {
		case e.op == "fsync":
			synced[e.name] = true
		case e.op == "rename" && isContent(e.name):
			content = append(content, e.name)
		case e.op == "rename" && isMeta(e.name) && !published:
			published = true
			for _, key := range content {
				if !synced[key] {
					t.Errorf("event %d: %s %s before the content file %s it may list was fsynced", i, e.op, e.name, key)
				}
				for dir := path.Dir(key); ; dir = path.Dir(dir) {
					if !synced[dir] {
						t.Errorf("event %d: %s %s before the directory %q (on the way to %s) was fsynced", i, e.op, e.name, dir, key)
					}
					if dir == "." {
						break
					}
				}
			}
		}
	}
	if !published {
		t.Fatal("no metadata file was renamed into place")
	}
	if got := len(content); got != want {
		t.Errorf("%d content files written before the metadata, want %d", got, want)
	}
}

// failingFlush is a target whose batch flush fails: nothing written through the batch is known
// to be durable.
type failingFlush struct{ *memstore.Store }

var errFlush = errors.New("the device went away")

func (f failingFlush) Batch() (store.Target, func(context.Context) error) {
	return f.Store, func(context.Context) error { return errFlush }
}

// TestFailedFlushForgetsFiles: when the batch flush after the transfers fails, the run fails
// before publishing anything, and the state it saves records none of the files it wrote (they
// are not known to be durable); the next run finds them in place and fetches nothing again.
func TestFailedFlushForgetsFiles(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	mem := memstore.New()
	_, err := sync.Run(t.Context(), up.src, failingFlush{mem}, sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: up.keyring}}})
	if !errors.Is(err, errFlush) {
		t.Fatalf("run with a failing flush: %v, want %v", err, errFlush)
	}
	if _, err := mem.Stat(t.Context(), "streams/v1/index.sjson"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("the index was published (Stat: %v)", err)
	}
	st, err := sync.LoadState(t.Context(), mem)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Objects) != 0 {
		t.Errorf("the state records %d objects written before the failed flush, want none", len(st.Objects))
	}
	rep := run(t, up, mem, sync.Options{})
	if rep.Fetched != 0 {
		t.Errorf("the next run fetched %d files again, want 0 (they are in place)", rep.Fetched)
	}
	if _, err := mem.Stat(t.Context(), "streams/v1/index.sjson"); err != nil {
		t.Errorf("the next run did not publish: %v", err)
	}
}

// TestFanOutFailedFlushFailsItsTarget: in a fan-out run, a target whose batch flush fails fails
// alone, publishing nothing and recording none of the files written; the other publishes.
func TestFanOutFailedFlushFailsItsTarget(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	bad, good := memstore.New(), memstore.New()
	fr, err := sync.RunTargets(t.Context(), up.src, []store.Target{failingFlush{bad}, good}, sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: up.keyring}}})
	var te *sync.TargetsError
	if !errors.As(err, &te) || len(te.Failed) != 1 || !errors.Is(fr.Targets[0].Err, errFlush) {
		t.Fatalf("fan-out run with one failing flush: %v, want the first target failed with %v", err, errFlush)
	}
	if fr.Targets[1].Err != nil {
		t.Errorf("the other target failed: %v", fr.Targets[1].Err)
	}
	if _, err := bad.Stat(t.Context(), "streams/v1/index.sjson"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("the index was published in the target whose flush failed (Stat: %v)", err)
	}
	if _, err := good.Stat(t.Context(), "streams/v1/index.sjson"); err != nil {
		t.Errorf("the other target was not published: %v", err)
	}
	st, err := sync.LoadState(t.Context(), bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Objects) != 0 {
		t.Errorf("the state records %d objects written before the failed flush, want none", len(st.Objects))
	}
}
