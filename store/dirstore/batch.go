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
	"syscall"

	"github.com/ssmirror/ssmirror/store"
)

var _ store.Batcher = (*Store)(nil)

// Batch returns a view of s whose Put and Copy do not sync each file before making it visible,
// and the flush that makes everything written through the view durable. Through the view a
// file is written and verified under a temporary name as always, its writeback is started
// (sync_file_range on Linux), and it is renamed into place; flush then fsyncs every such file
// (several at once), records its sha256 (XattrName), and fsyncs every directory whose entries
// changed, the parents of the directories created included. Until flush returns, a crash may
// leave such a file empty or with other content at its key; it carries no recorded sha256
// then, so it is hashed before it is trusted again. Whatever lists those files (metadata) must
// be written only after flush succeeds. The view's other methods are s's, and as durable as
// s's; flush may be called more than once, each call covering what was written before it.
func (s *Store) Batch() (store.Target, func(ctx context.Context) error) {
	b := &batch{Store: s, p: &pending{dirs: map[string]bool{}}}
	return b, b.flush
}

type batch struct {
	*Store
	p *pending
}

// pending is what a batch wrote and has not made durable yet.
type pending struct {
	mu    gosync.Mutex
	files []pendingFile
	dirs  map[string]bool // directories to fsync
	newd  []string        // directories whose parents are in dirs, recorded durable on flush
}

type pendingFile struct {
	key, etag, sum string
}

func (p *pending) add(key, etag, sum string, dirs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files = append(p.files, pendingFile{key, etag, sum})
	for _, d := range parentsToSync(key, dirs) {
		p.dirs[d] = true
	}
	p.newd = append(p.newd, dirs...)
}

// Put writes r at key atomically, once it is complete and matches opts; the file is durable
// only after the batch's flush.
func (b *batch) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	if err := checkKey("put", key); err != nil {
		return store.Info{}, err
	}
	return b.commit(ctx, "put", key, r, opts, b.p)
}

// Copy is Store.Copy, durable only after the batch's flush.
func (b *batch) Copy(ctx context.Context, dstKey, srcKey string, opts store.PutOptions) (store.Info, error) {
	return b.copy(ctx, dstKey, srcKey, opts, b.p)
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
	b.p.mu.Unlock()

	var mu gosync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	work := make(chan pendingFile)
	var wg gosync.WaitGroup
	for range min(flushers, len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pf := range work {
				if err := b.syncFile(pf); err != nil {
					fail(b.fail("sync", pf.key, err))
				}
			}
		}()
	}
	for _, pf := range files {
		if err := ctx.Err(); err != nil {
			fail(fmt.Errorf("syncing the files written to %s: %w", b.dir, err))
			break
		}
		work <- pf
	}
	close(work)
	wg.Wait()
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
func (b *batch) requeue(files []pendingFile, dirs map[string]bool, newd []string) {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	b.p.files = append(b.p.files, files...)
	for d := range dirs {
		b.p.dirs[d] = true
	}
	b.p.newd = append(b.p.newd, newd...)
}

// syncFile fsyncs the file at pf.key and, when it is still the file written (same ETag),
// records its sha256. A file deleted since is not an error.
func (b *batch) syncFile(pf pendingFile) error {
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
