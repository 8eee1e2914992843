//go:build linux

package dirstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/storetest"
)

// flushing is a batch view that flushes after every Put and Copy, so that the conformance suite
// runs the batched write path.
type flushing struct {
	store.Target
	flush func(context.Context) error
}

func (f flushing) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	info, err := f.Target.Put(ctx, key, r, opts)
	if err != nil {
		return info, err
	}
	return info, f.flush(ctx)
}

func (f flushing) Copy(ctx context.Context, dst, src string, opts store.PutOptions) (store.Info, error) {
	info, err := f.Target.(store.Copier).Copy(ctx, dst, src, opts)
	if err != nil {
		return info, err
	}
	return info, f.flush(ctx)
}

func TestBatchConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Target {
		v, flush := newStore(t, dirstore.Options{}).Batch()
		return flushing{v, flush}
	})
}

// tracer records Options.Trace events.
type tracer struct {
	mu     gosync.Mutex
	events []string
}

func (tr *tracer) trace(op, name string) {
	tr.mu.Lock()
	tr.events = append(tr.events, op+" "+name)
	tr.mu.Unlock()
}

func (tr *tracer) take() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	e := tr.events
	tr.events = nil
	return e
}

// TestBatchDurability: a file Put through a batch is visible at once but neither it nor its
// directories are fsynced, and it has no recorded sha256, until the flush, which fsyncs the
// file, its directory and the parents of the directories created for it, and records the sha256.
func TestBatchDurability(t *testing.T) {
	ctx := t.Context()
	var tr tracer
	s := newStore(t, dirstore.Options{Trace: tr.trace})
	data := []byte("content of a new file")
	// Whether this filesystem keeps user xattrs: a plain Put records the sha256.
	putBytes(t, s, "probe", "x")
	info, err := s.Stat(ctx, "probe")
	if err != nil {
		t.Fatal(err)
	}
	xattrs := info.SHA256 != ""
	tr.take()

	v, flush := s.Batch()
	if _, err := v.Put(ctx, "a/b/c/file", bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: sum(data)}); err != nil {
		t.Fatal(err)
	}
	if got := tr.take(); !slices.Equal(got, []string{"rename a/b/c/file"}) {
		t.Errorf("events of the batched Put: %q, want only the rename", got)
	}
	got, err := os.ReadFile(filepath.Join(s.Describe(), "a/b/c/file"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("before the flush the file reads %q, %v; want %q", got, err, data)
	}
	if info, err := s.Stat(ctx, "a/b/c/file"); err != nil || info.SHA256 != "" {
		t.Errorf("before the flush Stat = %+v, %v; want no recorded sha256", info, err)
	}
	if err := flush(ctx); err != nil {
		t.Fatal(err)
	}
	events := tr.take()
	slices.Sort(events)
	want := []string{"fsync .", "fsync a", "fsync a/b", "fsync a/b/c", "fsync a/b/c/file"}
	if !slices.Equal(events, want) {
		t.Errorf("flush events %q, want %q", events, want)
	}
	if info, err := s.Stat(ctx, "a/b/c/file"); err != nil || (xattrs && info.SHA256 != sum(data)) {
		t.Errorf("after the flush Stat = %+v, %v; want sha256 %s recorded", info, err, sum(data))
	}

	// Known durable now: a second file in the same directory syncs that directory only.
	if _, err := v.Put(ctx, "a/b/c/other", bytes.NewReader(data), store.PutOptions{Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	// A file deleted before the flush is not an error.
	if _, err := v.Put(ctx, "a/gone", bytes.NewReader(data), store.PutOptions{Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a/gone"); err != nil {
		t.Fatal(err)
	}
	tr.take()
	if err := flush(ctx); err != nil {
		t.Fatal(err)
	}
	events = tr.take()
	slices.Sort(events)
	if want := []string{"fsync a", "fsync a/b/c", "fsync a/b/c/other"}; !slices.Equal(events, want) {
		t.Errorf("second flush events %q, want %q", events, want)
	}
	if err := flush(ctx); err != nil || len(tr.take()) != 0 {
		t.Errorf("an empty flush: %v, events %q", err, tr.take())
	}
}

// TestPutSyncsNewDirectories: a plain Put creating directories fsyncs the file before its
// rename, and the parent of every directory it created before it returns.
func TestPutSyncsNewDirectories(t *testing.T) {
	var tr tracer
	s := newStore(t, dirstore.Options{Trace: tr.trace})
	putBytes(t, s, "x/y/z", "data")
	want := []string{"fsync x/y/z", "rename x/y/z", "fsync x/y", "fsync x", "fsync ."}
	if got := tr.take(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	putBytes(t, s, "x/y/w", "data")
	want = []string{"fsync x/y/w", "rename x/y/w", "fsync x/y"}
	if got := tr.take(); !slices.Equal(got, want) {
		t.Errorf("second Put: events %q, want %q", got, want)
	}
}

// TestBatchConcurrent: files Put at once through a batch, into directories created at the same
// time by several of them, are all fsynced by the flush with every directory on their way.
func TestBatchConcurrent(t *testing.T) {
	ctx := t.Context()
	var tr tracer
	s := newStore(t, dirstore.Options{Trace: tr.trace})
	v, flush := s.Batch()
	var keys []string
	for i := range 24 {
		keys = append(keys, fmt.Sprintf("d%d/e%d/f%d", i%3, i%6, i))
	}
	var wg gosync.WaitGroup
	for _, key := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Put(ctx, key, strings.NewReader(key), store.PutOptions{Size: int64(len(key)), SHA256: sum([]byte(key))}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, e := range tr.take() {
		if strings.HasPrefix(e, "fsync ") {
			t.Errorf("%s before the flush", e)
		}
	}
	if err := flush(ctx); err != nil {
		t.Fatal(err)
	}
	synced := map[string]bool{}
	for _, e := range tr.take() {
		if name, ok := strings.CutPrefix(e, "fsync "); ok {
			synced[name] = true
		}
	}
	for _, key := range keys {
		for name := key; ; name = filepath.Dir(name) {
			if !synced[name] {
				t.Errorf("%s (on the way to %s) not fsynced by the flush", name, key)
			}
			if name == "." {
				break
			}
		}
	}
}
