package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"

	"github.com/ssmirror/ssmirror/store"
)

var _ store.Batcher = (*Store)(nil)

// Batch returns a view of s whose Put and Copy do not sync each file before making it visible,
// and the flush that makes everything written through the view durable. Through the view a
// file is written and verified under a temporary name as always, its writeback is started
// (sync_file_range on Linux), and it is renamed into place; then it is handed to the batch's
// background syncers, which fsync it (a few files at once) while the writes go on, and record
// its sha256 (XattrName) only once that fsync has succeeded. flush waits for them, fsyncs the
// files they have not reached, and then every directory whose entries changed, the parents of
// the directories created included. Until flush returns, a crash may leave such a file empty
// or with other content at its key; it carries no recorded sha256 then, so it is hashed before
// it is trusted again. Whatever lists those files (metadata) must be written only after flush
// succeeds. The view's other methods are s's, and as durable as s's; flush may be called more
// than once, each call covering what was written before it.
//
// Why in the background: on a device with a volatile write cache (a virtual disk cached by its
// host, a disk's own cache) an fsync waits for the cache flush, which takes as long as the cache
// holds written data. Syncing each file soon after it is written spreads those flushes over the
// transfer, whose writers are busy hashing and reading the network meanwhile, instead of leaving
// one long wait for all of them at the end.
func (s *Store) Batch() (store.Target, func(ctx context.Context) error) {
	b := &batch{Store: s, p: &pending{dirs: map[string]bool{}}}
	b.p.idle = gosync.NewCond(&b.p.mu)
	return b, b.flush
}

type batch struct {
	*Store
	p *pending
}

// pending is what a batch wrote and has not made durable yet.
type pending struct {
	mu      gosync.Mutex
	files   []*pendingFile  // written since the last flush took them, synced early or not
	queue   []*pendingFile  // waiting for a background syncer
	syncers int             // background syncers running
	idle    *gosync.Cond    // signalled when the last background syncer stops (tests)
	dirs    map[string]bool // directories to fsync
	newd    []string        // directories whose parents are in dirs, recorded durable on flush
}

// pendingFile is a file written through the batch. Whoever claims it (a background syncer or
// the flush) syncs it, sets err and closes done.
type pendingFile struct {
	key, etag, sum string
	claimed        atomic.Bool
	done           chan struct{}
	err            error
}

func newPendingFile(key, etag, sum string) *pendingFile {
	return &pendingFile{key: key, etag: etag, sum: sum, done: make(chan struct{})}
}

// earlySyncers is how many files the background syncers of one batch fsync at once: enough for
// the filesystem to commit several together, few enough to leave the writers the CPU.
const earlySyncers = 2

// add records a file written through b (and the directories on its way whose entries are not
// known to be durable) and hands it to the background syncers.
func (b *batch) add(key, etag, sum string, dirs []string) {
	p := b.p
	pf := newPendingFile(key, etag, sum)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files = append(p.files, pf)
	for _, d := range parentsToSync(key, dirs) {
		p.dirs[d] = true
	}
	p.newd = append(p.newd, dirs...)
	p.queue = append(p.queue, pf)
	if p.syncers < earlySyncers {
		p.syncers++
		go b.syncQueued()
	}
}

// syncQueued is a background syncer: it syncs queued files until there are none left.
func (b *batch) syncQueued() {
	p := b.p
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.syncers--
			if p.syncers == 0 {
				p.idle.Broadcast()
			}
			p.mu.Unlock()
			return
		}
		pf := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.mu.Unlock()
		b.sync(pf)
	}
}

// sync syncs pf unless someone else has claimed it.
func (b *batch) sync(pf *pendingFile) {
	if !pf.claimed.CompareAndSwap(false, true) {
		return
	}
	if err := b.syncFile(pf); err != nil {
		pf.err = b.fail("sync", pf.key, err)
	}
	close(pf.done)
}

// Put writes r at key atomically, once it is complete and matches opts; the file is durable
// only after the batch's flush.
func (b *batch) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	if err := checkKey("put", key); err != nil {
		return store.Info{}, err
	}
	return b.commit(ctx, "put", key, r, opts, b.add)
}

// Copy is Store.Copy, durable only after the batch's flush.
func (b *batch) Copy(ctx context.Context, dstKey, srcKey string, opts store.PutOptions) (store.Info, error) {
	return b.copy(ctx, dstKey, srcKey, opts, b.add)
}

// flushers is how many files one flush syncs at once: the filesystem commits concurrent
// fsyncs together, and each one waits on the device rather than the CPU.
const flushers = 8

// flush makes durable every file written through b before it was called, then the directories
// naming them.
func (b *batch) flush(ctx context.Context) error {
	b.p.mu.Lock()
	files, dirs, newd := b.p.files, b.p.dirs, b.p.newd
	b.p.files, b.p.dirs, b.p.newd = nil, map[string]bool{}, nil
	// What the background syncers have not started on is synced here (every queued file is in
	// files: both are filled by add).
	clear(b.p.queue)
	b.p.queue = nil
	b.p.mu.Unlock()

	var errs []error
	work := make(chan *pendingFile)
	var wg gosync.WaitGroup
	for range min(flushers, len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pf := range work {
				b.sync(pf)
			}
		}()
	}
	for _, pf := range files {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("syncing the files written to %s: %w", b.dir, err))
			break
		}
		work <- pf
	}
	close(work)
	wg.Wait()
	// Every file is claimed now unless ctx ended first; wait for those a background syncer is
	// still on.
	for _, pf := range files {
		if !pf.claimed.Load() {
			continue
		}
		<-pf.done
		if pf.err != nil {
			errs = append(errs, pf.err)
		}
	}
	if len(errs) > 0 {
		b.requeue(files, dirs, newd)
		return errors.Join(errs...)
	}

	// Deepest first: the order does not matter for durability (all are done before flush
	// returns), but it is the natural one.
	order := make([]string, 0, len(dirs))
	for d := range dirs {
		order = append(order, d)
	}
	slices.SortFunc(order, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range order {
		if err := b.syncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			errs = append(errs, b.fail("sync", d, err))
		}
	}
	if len(errs) > 0 {
		b.requeue(nil, dirs, newd)
		return errors.Join(errs...)
	}
	for _, d := range newd {
		b.durableDirs.Store(d, true)
	}
	return nil
}

// requeue puts back what a failed flush did not make durable, for the next flush to try again.
func (b *batch) requeue(files []*pendingFile, dirs map[string]bool, newd []string) {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	for _, pf := range files {
		b.p.files = append(b.p.files, newPendingFile(pf.key, pf.etag, pf.sum))
	}
	for d := range dirs {
		b.p.dirs[d] = true
	}
	b.p.newd = append(b.p.newd, newd...)
}

// syncFile fsyncs the file at pf.key and, when it is still the file written (same ETag),
// records its sha256. A file deleted since is not an error.
func (b *batch) syncFile(pf *pendingFile) error {
	f, err := b.root.OpenFile(pf.key, syncOpenFlag|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return err
	}
	defer f.Close()
	if err := b.fsync(f, pf.key); err != nil {
		return err
	}
	// Recorded only now: a recorded sha256 must never describe content that is not durable.
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fileETag(fi) == pf.etag {
		b.record(f, fi, pf.sum)
	}
	return nil
}
