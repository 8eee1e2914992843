package sync

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/retry"
	"github.com/ssmirror/ssmirror/streams"
)

// transfer brings every path the plan fetches into the target, Concurrency at a time, each
// verified while it streams. Objects that arrive are recorded in the state as they complete.
// Every failure is returned, each naming its path.
func (r *run) transfer(ctx context.Context) (err error) {
	fetches := r.plan.Fetch
	if len(fetches) == 0 {
		return nil
	}
	var total int64
	for _, f := range fetches {
		total += f.Size
	}
	r.progress.begin(len(fetches), total)
	defer r.progress.end()
	defer startTransfer(r.dst, &r.opts)()

	st, rep := r.st, r.rep

	// A target that can make files durable in batches (a directory: otherwise one fsync per file,
	// in the way of the next one) has the content written through its batch view and made
	// durable here, before transfer returns: before anything that lists it is published and
	// before the state is saved with it. Only the content goes through the view; the metadata
	// written later (publish) and the state stay durable write by write.
	dst := r.dst
	var written []string // paths this run wrote, for a failed flush to take back
	if b, ok := store.As[store.Batcher](r.dst); ok {
		var flush func(context.Context) error
		dst, flush = b.Batch()
		defer func() {
			// Runs after every worker has stopped: nothing else touches st or written now.
			if ferr := flush(ctx); ferr != nil {
				// Not known to be durable: not recorded, so the next run checks them again.
				for _, p := range written {
					delete(st.Objects, p)
				}
				err = errors.Join(err, fmt.Errorf("making the files written durable: %w", ferr))
			}
		}()
	}

	// Content already in the target under another path can be copied there instead of fetched.
	bySum := map[string]string{}
	if _, ok := store.As[store.Copier](dst); ok {
		for key, obj := range st.Objects {
			if obj.SHA256 != "" {
				if k, seen := bySum[obj.SHA256]; !seen || key < k {
					bySum[obj.SHA256] = key
				}
			}
		}
	}

	var mu gosync.Mutex // guards bySum, st, rep, errs and written
	var errs []error
	// transferFile brings f into the target and records the outcome.
	transferFile := func(f Fetch) {
		mu.Lock()
		copyFrom := bySum[f.SHA256]
		mu.Unlock()
		res, err := r.transferOne(ctx, dst, f, copyFrom)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() == nil {
				// A cancelled run says so once (the caller knows why); not once per file in flight.
				r.log.Error("transfer failed", "path", f.Path, "error", err)
			}
			return
		}
		etag := res.etag
		if res.how == "adopted" { // checked as listed
			etag = st.listed[f.Path].ETag
		}
		st.Objects[f.Path] = Object{Size: f.Size, SHA256: res.sha256, ETag: etag}
		if res.how != "adopted" {
			written = append(written, f.Path)
		}
		if res.sha256 != "" {
			if _, seen := bySum[res.sha256]; !seen {
				bySum[res.sha256] = f.Path
			}
		}
		switch res.how {
		case "fetched":
			rep.Fetched++
			rep.FetchedBytes += f.Size
		case "copied":
			rep.Copied++
			rep.CopiedBytes += f.Size
		case "adopted":
			rep.Adopted++
		}
		r.log.Debug(res.how, "path", f.Path, "size", f.Size)
	}
	// Concurrency workers take the files in order; every file is tried, every failure reported.
	work := make(chan Fetch)
	var wg gosync.WaitGroup
	for range min(r.concurrency, len(fetches)) {
		wg.Go(func() {
			for f := range work {
				transferFile(f)
			}
		})
	}
	// More files at once on a link that limits each connection: a transfer beyond Concurrency
	// runs on a range stream slot no large file wants (ranged.Pool.Borrow), once some connection
	// to the source was found slow; it gives the slot back after each file.
	lendCtx, stopLending := context.WithCancel(ctx)
	if pool := r.ranged(); pool != nil && len(fetches) > r.concurrency {
		if _, ok := store.As[store.RangeOpener](r.src); ok {
			for range min(pool.Slots(), len(fetches)-r.concurrency) {
				wg.Go(func() {
					for {
						giveBack, ok := pool.Borrow(lendCtx)
						if !ok {
							return
						}
						f, more := <-work
						if !more {
							giveBack()
							return
						}
						transferFile(f)
						giveBack()
					}
				})
			}
		}
	}
	for _, f := range fetches {
		if ctx.Err() != nil {
			break
		}
		work <- f
	}
	close(work)
	stopLending()
	wg.Wait()
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("interrupted: %w", context.Cause(ctx)))
	}
	if len(errs) == 0 {
		return nil
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return &TransferError{Errs: errs}
}

// TransferError is returned when some files could not be brought in; nothing was published.
type TransferError struct{ Errs []error }

func (e *TransferError) Error() string {
	if len(e.Errs) == 1 {
		return e.Errs[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d files failed, nothing was published:", len(e.Errs))
	for i, err := range e.Errs {
		if i == 10 {
			fmt.Fprintf(&b, "\n  … and %d more", len(e.Errs)-10)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *TransferError) Unwrap() []error { return e.Errs }

type transferResult struct {
	how    string // fetched, copied, adopted
	sha256 string
	etag   string // of the object written ("" when adopted: the listing has it)
}

// transferOne brings f into dst: r.dst, or the batch view of it transfer writes the content
// through (store.Batcher).
func (r *run) transferOne(ctx context.Context, dst store.Target, f Fetch, copyFrom string) (res transferResult, err error) {
	src, opts := r.src, &r.opts
	if f.Size < 0 {
		// The plan refuses these (checkSizes); a negative size would turn the size check off.
		return transferResult{}, fmt.Errorf("fetching %s: %w: declared size %d", f.Path, ErrTooLarge, f.Size)
	}
	parent := ctx
	ctx, cancel := opts.withFileDeadline(ctx, f.Size)
	defer cancel()
	defer func() {
		// A file that ran out of time says so, whatever the read or write in flight made of it.
		if err != nil && parent.Err() == nil && ctx.Err() != nil {
			if cause := context.Cause(ctx); !errors.Is(err, cause) {
				err = fmt.Errorf("%w (%w)", err, cause)
			}
		}
	}()
	r.progress.startFile(f.Path, f.Size)
	defer r.progress.finishFile(f.Path)
	if f.Check {
		sum, err := hashObject(ctx, dst, f, r.progress)
		switch {
		case errors.Is(err, store.ErrChecksum): // a sha512 or md5 catalogue's hash differs
			r.log.Warn("present object differs from the catalogue; fetching it again", "path", f.Path, "error", err)
		case err != nil:
			return transferResult{}, err
		case f.SHA256 == "" || sum == f.SHA256:
			r.progress.fileDone()
			return transferResult{"adopted", sum, ""}, nil
		default:
			r.log.Warn("present object differs from the catalogue; fetching it again", "path", f.Path)
		}
	}
	put := store.PutOptions{
		Size:         f.Size,
		SHA256:       f.SHA256,
		ContentType:  streams.ContentType(f.Path),
		CacheControl: cmp.Or(opts.ContentCacheControl, DefaultContentCacheControl),
	}
	if copyFrom != "" && copyFrom != f.Path && f.SHA256 != "" {
		c, _ := store.As[store.Copier](dst)
		info, err := c.Copy(ctx, f.Path, copyFrom, put)
		if err == nil {
			r.progress.add(f.Size)
			r.progress.fileDone()
			return transferResult{"copied", info.SHA256, info.ETag}, nil
		}
		r.log.Warn("server-side copy failed; fetching instead", "path", f.Path, "from", copyFrom, "error", err)
	}
	// An open that fails (the source answering 5xx or not at all) is tried again by the retrying
	// source; a complete download whose checksum is wrong, here.
	logRetry := func(attempt int, err error) {
		r.log.Warn("fetch failed; trying again", "path", f.Path, "attempt", attempt, "error", err)
	}
	rsrc := retry.NewSource(src, sourcePolicy(logRetry))
	var info store.Info
	var opened bool
	var last error
	err = retry.Do(ctx, retry.Policy{
		Attempts:  maxChecksumAttempts,
		Backoff:   fetchBackoff,
		Permanent: func(err error) bool { return !opened || !errors.Is(err, store.ErrChecksum) },
		Notify:    logRetry,
	}, func(ctx context.Context) error {
		info, opened, last = fetchOnce(ctx, src, rsrc, dst, f, put, r)
		return last
	})
	if re, ok := err.(*retry.Error); ok && err != last && re.Interrupted == nil && !errors.Is(last, store.ErrChecksum) {
		// Another failure after a bad checksum: the attempts counted here are not its own.
		err = last
	}
	if err != nil {
		return transferResult{}, fmt.Errorf("fetching %s: %w", f.Path, err)
	}
	r.progress.fileDone()
	return transferResult{"fetched", info.SHA256, info.ETag}, nil
}

// Bounds on fetching one file: attempts to open it or one of its ranges (the source answering
// 5xx or not at all; counted per open), and complete downloads whose checksum is wrong.
const (
	maxOpenAttempts     = 5
	maxChecksumAttempts = 3
)

// fetchOnce opens f in src and streams it into dst: in ranges from src (whose reader tries each
// range's open again itself), or in one piece from rsrc (src behind sourcePolicy). opened says
// whether the source answered, so that a failure can be told apart from one in the body or the
// target. Bytes counted in the progress by a failed attempt are taken back.
func fetchOnce(ctx context.Context, src, rsrc store.Source, dst store.Target, f Fetch, put store.PutOptions, rn *run) (store.Info, bool, error) {
	rc := rn.openRanged(ctx, src, f)
	if rc == nil {
		start := time.Now()
		var err error
		if rc, err = rsrc.Open(ctx, f.Path, 0); err != nil {
			return store.Info{}, false, err
		}
		defer rn.noteRate(f, start)
	}
	defer rc.Close()
	cr := newCountingReader(rc, rn.progress, f.Path)
	var r io.Reader = cr
	if f.SHA256 == "" {
		r = newExtraCheck(f, r)
	}
	info, err := dst.Put(ctx, f.Path, r, put)
	if err != nil {
		cr.count(-cr.n)
		return store.Info{}, true, err
	}
	return info, true, nil
}

// sourcePolicy is how reads from the source are tried again (whole opens, range opens, metadata
// files): maxOpenAttempts times in all, fetchBackoff apart, unless the failure is permanent:
// retry.Permanent's (a missing object, a refusal, a cancelled run, a certificate that does not
// verify, …) or a file that ran out of time (ErrTooSlow). (The HTTP store resumes interrupted
// bodies by itself, but answers 5xx or connection failures on the first request as errors.)
func sourcePolicy(notify func(attempt int, err error)) retry.Policy {
	return retry.Policy{
		Attempts:  maxOpenAttempts,
		Backoff:   fetchBackoff,
		Permanent: func(err error) bool { return retry.Permanent(err) || errors.Is(err, ErrTooSlow) },
		Notify:    notify,
	}
}

// fetchBackoff is the pause before attempt+1 of a fetch, about 0.5s, 1s, 2s, … (at most 8s),
// jittered by ±25% (a variable so that fuzz targets, which run thousands of failing transfers,
// need not wait).
var fetchBackoff = retry.Exponential(500*time.Millisecond, 8*time.Second)

// hashObject reads the object at f.Path in the target and returns its sha256. When the
// catalogue gives no sha256 for it, the sha512 or md5 it gives is checked too: a mismatch is an
// error wrapping store.ErrChecksum.
func hashObject(ctx context.Context, s store.Source, f Fetch, p *Progress) (string, error) {
	key := f.Path
	rc, err := s.Open(ctx, key, 0)
	if err != nil {
		return "", fmt.Errorf("checking %s: %w", key, err)
	}
	defer rc.Close()
	var r io.Reader = newCountingReader(rc, p, key)
	if f.SHA256 == "" {
		r = newExtraCheck(f, r)
	}
	v := store.NewVerifier(key, r, store.PutOptions{Size: -1})
	if _, err := io.Copy(io.Discard, v); err != nil {
		return "", fmt.Errorf("checking %s: %w", key, err)
	}
	return v.Sum(), nil
}

// extraCheck verifies a sha512 or md5 (catalogues without sha256) and turns a mismatch into a
// read error before the end of the stream, so the store never makes the object visible.
type extraCheck struct {
	r    io.Reader
	h    hash.Hash
	want string
	path string
	algo string
}

func newExtraCheck(f Fetch, r io.Reader) io.Reader {
	switch {
	case f.SHA512 != "":
		return &extraCheck{r: r, h: sha512.New(), want: f.SHA512, path: f.Path, algo: "sha512"}
	case f.MD5 != "":
		return &extraCheck{r: r, h: md5.New(), want: f.MD5, path: f.Path, algo: "md5"}
	}
	return r
}

func (c *extraCheck) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(c.h.Sum(nil)); !strings.EqualFold(got, c.want) {
			return n, fmt.Errorf("%s: %w: %s %s, expected %s", c.path, store.ErrChecksum, c.algo, got, c.want)
		}
	}
	return n, err
}

// countingReader counts the bytes of one file into the progress: the run's total and, while
// the file is in flight, its own entry (looked up once, not on every read).
type countingReader struct {
	r    io.Reader
	p    *Progress
	file *fileEntry // nil when the file is not tracked
	n    int64
}

func newCountingReader(r io.Reader, p *Progress, path string) *countingReader {
	return &countingReader{r: r, p: p, file: p.file(path)}
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.count(int64(n))
	c.n += int64(n)
	return n, err
}

// count adds n bytes (negative: takes back bytes of an attempt that failed).
func (c *countingReader) count(n int64) {
	c.p.add(n)
	if c.file != nil {
		c.file.done.Add(n)
	}
}
