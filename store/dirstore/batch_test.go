//go:build linux

package dirstore_test

import (
	"bytes"
	"context"
	"errors"
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

// TestBatchDurability: a file Put through a batch is visible at once; a background syncer
// fsyncs it soon after and records its sha256, but none of its directories is fsynced until
// the flush, which fsyncs the file's directory and the parents of the directories created for
// it (and any file the syncers have not reached).
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
	got, err := os.ReadFile(filepath.Join(s.Describe(), "a/b/c/file"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("before the flush the file reads %q, %v; want %q", got, err, data)
	}
	dirstore.WaitBatchSynced(v)
	if got := tr.take(); !slices.Equal(got, []string{"rename a/b/c/file", "fsync a/b/c/file"}) {
		t.Errorf("events of the batched Put: %q, want the rename, then the file's fsync and no directory's", got)
	}
	if info, err := s.Stat(ctx, "a/b/c/file"); err != nil || (xattrs && info.SHA256 != sum(data)) {
		t.Errorf("once synced in the background Stat = %+v, %v; want sha256 %s recorded", info, err, sum(data))
	}
	if err := flush(ctx); err != nil {
		t.Fatal(err)
	}
	events := tr.take()
	slices.Sort(events)
	want := []string{"fsync .", "fsync a", "fsync a/b", "fsync a/b/c"}
	if !slices.Equal(events, want) {
		t.Errorf("flush events %q, want %q", events, want)
	}

	// Known durable now: a second file in the same directory syncs that directory only.
	if _, err := v.Put(ctx, "a/b/c/other", bytes.NewReader(data), store.PutOptions{Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	dirstore.WaitBatchSynced(v)
	if got := tr.take(); !slices.Equal(got, []string{"rename a/b/c/other", "fsync a/b/c/other"}) {
		t.Errorf("events of the second batched Put: %q, want the rename, then the file's fsync", got)
	}
	// A file deleted before its sync is not an error (a syncer may have reached it before the
	// delete, or not).
	if _, err := v.Put(ctx, "a/gone", bytes.NewReader(data), store.PutOptions{Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a/gone"); err != nil {
		t.Fatal(err)
	}
	dirstore.WaitBatchSynced(v)
	tr.take()
	if err := flush(ctx); err != nil {
		t.Fatal(err)
	}
	events = tr.take()
	slices.Sort(events)
	if want := []string{"fsync a", "fsync a/b/c"}; !slices.Equal(events, want) {
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
// time by several of them, are all fsynced (in the background or by the flush), and every
// directory on their way by the flush.
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
	synced := map[string]bool{}
	for _, e := range tr.take() {
		if name, ok := strings.CutPrefix(e, "fsync "); ok {
			if !slices.Contains(keys, name) {
				t.Errorf("directory %s fsynced before the flush", name)
			}
			synced[name] = true
		}
	}
	if err := flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range tr.take() {
		if name, ok := strings.CutPrefix(e, "fsync "); ok {
			synced[name] = true
		}
	}
	for _, key := range keys {
		for name := key; ; name = filepath.Dir(name) {
			if !synced[name] {
				t.Errorf("%s (on the way to %s) not fsynced by the end of the flush", name, key)
			}
			if name == "." {
				break
			}
		}
	}
}

// TestBatchSyncsInTheBackground: files Put through a batch are fsynced by its background
// syncers, their sha256 recorded, before any flush; the flush then has only the directories
// left to sync. (Before, every file waited for the flush.)
func TestBatchSyncsInTheBackground(t *testing.T) {
	ctx := t.Context()
	var tr tracer
	s := newStore(t, dirstore.Options{Trace: tr.trace})
	xattrs := hasXattrs(t, s)
	tr.take()
	v, flush := s.Batch()
	var keys []string
	for i := range 6 {
		key := fmt.Sprintf("d/f%d", i)
		keys = append(keys, key)
		if _, err := v.Put(ctx, key, strings.NewReader(key), store.PutOptions{Size: int64(len(key)), SHA256: sum([]byte(key))}); err != nil {
			t.Fatal(err)
		}
	}
	dirstore.WaitBatchSynced(v)
	var synced []string
	for _, e := range tr.take() {
		if name, ok := strings.CutPrefix(e, "fsync "); ok {
			synced = append(synced, name)
		}
	}
	slices.Sort(synced)
	if !slices.Equal(synced, keys) {
		t.Errorf("fsynced before the flush: %q, want the files %q and no directory", synced, keys)
	}
	for _, key := range keys {
		if info, err := s.Stat(ctx, key); err != nil || (xattrs && info.SHA256 != sum([]byte(key))) {
			t.Errorf("%s synced in the background: Stat = %+v, %v; want its sha256 recorded", key, info, err)
		}
	}
	if err := flush(ctx); err != nil {
		t.Fatal(err)
	}
	events := tr.take()
	slices.Sort(events)
	if want := []string{"fsync .", "fsync d"}; !slices.Equal(events, want) {
		t.Errorf("flush events %q, want only the directories %q", events, want)
	}
}

// TestBatchRecordsOnlyWhatIsSynced: a file's sha256 is recorded only after its fsync returned
// (when the fsync happens, none is recorded yet), and never when the fsync failed: then the
// flush fails naming the file, the directories are not taken for durable, and the next flush
// syncs the file again and records its sha256.
func TestBatchRecordsOnlyWhatIsSynced(t *testing.T) {
	ctx := t.Context()
	var s *dirstore.Store
	var mu gosync.Mutex
	var early []string // files whose sha256 was recorded when their first fsync returned
	var events []string
	seen := map[string]bool{}
	s = newStore(t, dirstore.Options{Trace: func(op, name string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, op+" "+name)
		if op == "fsync" && strings.HasPrefix(name, "d/") && !seen[name] {
			seen[name] = true
			if info, err := s.Stat(ctx, name); err == nil && info.SHA256 != "" {
				early = append(early, name)
			}
		}
	}})
	xattrs := hasXattrs(t, s)
	errDevice := errors.New("injected: the device failed")
	dirstore.SetSyncFault(s, func(name string) error {
		if name == "d/bad" {
			return errDevice
		}
		return nil
	})
	v, flush := s.Batch()
	for _, key := range []string{"d/good", "d/bad", "d/sub/good"} {
		if _, err := v.Put(ctx, key, strings.NewReader(key), store.PutOptions{Size: int64(len(key)), SHA256: sum([]byte(key))}); err != nil {
			t.Fatal(err)
		}
	}
	err := flush(ctx)
	if !errors.Is(err, errDevice) || !strings.Contains(err.Error(), "d/bad") {
		t.Fatalf("flush with a failing fsync: %v, want the injected error naming d/bad", err)
	}
	if info, err := s.Stat(ctx, "d/bad"); err != nil || info.SHA256 != "" {
		t.Errorf("after its failed fsync d/bad: Stat = %+v, %v; want no recorded sha256", info, err)
	}
	mu.Lock()
	events = nil
	mu.Unlock()
	dirstore.SetSyncFault(s, nil)
	if err := flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(events)
	mu.Unlock()
	for _, want := range []string{"fsync d/bad", "fsync d/sub", "fsync d", "fsync ."} {
		if !slices.Contains(got, want) {
			t.Errorf("the flush after the failure: events %q, want %q among them", got, want)
		}
	}
	if info, err := s.Stat(ctx, "d/bad"); err != nil || (xattrs && info.SHA256 != sum([]byte("d/bad"))) {
		t.Errorf("after the second flush d/bad: Stat = %+v, %v; want its sha256 recorded", info, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(early) > 0 {
		t.Errorf("sha256 recorded before the fsync of %q returned", early)
	}
}

// hasXattrs reports whether s records sha256s on this filesystem (a plain Put does).
func hasXattrs(t *testing.T, s *dirstore.Store) bool {
	t.Helper()
	putBytes(t, s, "probe", "x")
	info, err := s.Stat(t.Context(), "probe")
	if err != nil {
		t.Fatal(err)
	}
	return info.SHA256 != ""
}
