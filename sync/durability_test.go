package sync_test

import (
	"path"
	"strings"
	gosync "sync"
	"testing"

	"github.com/ssmirror/ssmirror/store/dirstore"
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
	var mu gosync.Mutex
	type event struct{ op, name string }
	var events []event
	dst, err := dirstore.New(t.TempDir(), dirstore.Options{Trace: func(op, name string) {
		mu.Lock()
		events = append(events, event{op, name})
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, up, dst, sync.Options{})
	if rep.Fetched == 0 {
		t.Fatal("the run fetched nothing")
	}

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
	if got, want := len(content), len(up.stream.Content); got != want {
		t.Errorf("%d content files written before the metadata, want %d", got, want)
	}
}
