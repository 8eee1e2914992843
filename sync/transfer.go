package sync

import (
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

// transfer brings every path the plan fetches into the target, each verified while it streams,
// and returns every failure, each naming its path. The run's hub does the work: for a run of its
// own it is exactly a single-target transfer (transferAll); in a fan-out run it waits for the
// other targets' plans and fetches each file once for all of them (fanout.go). Objects that
// arrive are recorded in the state as they complete (noteResult).
func (r *run) transfer(ctx context.Context) error {
	return r.hub.transfer(ctx, r)
}

// copySource is the object in the target under another path holding f's content, if the
// target can copy it there instead of fetching it ("" otherwise).
func (r *run) copySource(f Fetch) string {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	if r.bySum == nil {
		r.bySum = map[string]string{}
		if _, ok := store.As[store.Copier](r.content); ok { // what prepare copies through
			for key, obj := range r.st.Objects {
				if obj.SHA256 != "" {
					if k, seen := r.bySum[obj.SHA256]; !seen || key < k {
						r.bySum[obj.SHA256] = key
					}
				}
			}
		}
	}
	return r.bySum[f.SHA256]
}

// noteResult records how f came into the target, or why it did not.
func (r *run) noteResult(ctx context.Context, f Fetch, res transferResult, err error) {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	st, rep := r.st, r.rep
	if err != nil {
		r.terrs = append(r.terrs, err)
		if ctx.Err() == nil {
			// A cancelled run says so once (the caller knows why); not once per file in flight.
			r.opts.Log.Error("transfer failed", "path", f.Path, "error", err)
		}
		return
	}
	etag := res.etag
	if res.how == "adopted" { // checked as listed
		etag = st.listed[f.Path].ETag
	}
	st.Objects[f.Path] = Object{Size: f.Size, SHA256: res.sha256, ETag: etag}
	if res.how != "adopted" {
		r.written = append(r.written, f.Path)
	}
	if res.sha256 != "" && r.bySum != nil {
		if _, seen := r.bySum[res.sha256]; !seen {
			r.bySum[res.sha256] = f.Path
		}
	}
	switch res.how {
	case "fetched":
		rep.Fetched++
		rep.FetchedBytes += f.Size
	case "copied":
		rep.Copied++
		rep.CopiedBytes += f.Size
	case "copied from":
		rep.CopiedFrom++
		rep.CopiedFromBytes += f.Size
	case "adopted":
		rep.Adopted++
	}
	r.opts.Log.Debug(res.how, "path", f.Path, "size", f.Size)
}

// transferError is the run's transfer outcome: nil, or every failure, sorted, in a
// TransferError (with the interruption when ctx ended).
func (r *run) transferError(ctx context.Context) error {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	errs := r.terrs
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("interrupted: %w", context.Cause(ctx)))
	}
	if len(errs) == 0 {
		return nil
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return &TransferError{Errs: errs}
}

// transferAll is the transfer of a run of its own: every path the plan fetches, each by
// transferOne (eachFile: Concurrency at a time, more on borrowed range slots). Every file is
// tried (no cancellation on a failure).
func (r *run) transferAll(ctx context.Context) {
	fetches := r.plan.Fetch
	if len(fetches) == 0 {
		return
	}
	var total int64
	for _, f := range fetches {
		total += f.Size
	}
	r.opts.Progress.begin(len(fetches), total)
	defer r.opts.Progress.end()
	defer startTransfer([]store.Target{r.dst}, &r.opts, 0)()

	r.hub.eachFile(ctx, len(fetches), func(i int) {
		f := fetches[i]
		res, err := r.transferOne(ctx, f, r.copySource(f))
		r.noteResult(ctx, f, res, err)
	})
}

// eachFile calls do for 0 … n-1 (the files of a transfer, in order) until ctx ends: Concurrency
// workers take them in order, every file is tried. More files at once on a link that limits each
// connection: a transfer beyond Concurrency runs on a range stream slot no large file wants
// (ranged.Pool.Borrow), once some connection to the source was found slow; it gives the slot
// back after each file.
func (h *hub) eachFile(ctx context.Context, n int, do func(i int)) {
	work := make(chan int)
	var wg gosync.WaitGroup
	for range min(h.opts.Concurrency, n) {
		wg.Go(func() {
			for i := range work {
				do(i)
			}
		})
	}
	lendCtx, stopLending := context.WithCancel(ctx)
	if borrowers := h.borrowers(n); borrowers > 0 {
		pool := h.ranged()
		for range borrowers {
			wg.Go(func() {
				for {
					giveBack, ok := pool.Borrow(lendCtx)
					if !ok {
						return
					}
					i, more := <-work
					if !more {
						giveBack()
						return
					}
					do(i)
					giveBack()
				}
			})
		}
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	stopLending()
	wg.Wait()
}

// borrowers is how many of n files eachFile may run beyond Concurrency, on borrowed range
// slots: none unless ranged downloads are on and the source serves ranges.
func (h *hub) borrowers(n int) int {
	pool := h.ranged()
	if pool == nil || n <= h.opts.Concurrency {
		return 0
	}
	if _, ok := store.As[store.RangeOpener](h.src); !ok {
		return 0
	}
	return min(pool.Slots(), n-h.opts.Concurrency)
}

// openContent makes what the transfer writes r's content through: a target that can make files
// durable in batches (a directory: otherwise one fsync per file, in the way of the next one) has
// the content written through its batch view, made durable by closeContent before the transfer
// returns: before anything that lists it is published and before the state is saved with it.
// Only the content goes through the view; the metadata written later (publish) and the state
// stay durable write by write. In a fan-out run the same holds for each target, tee or not.
func (r *run) openContent() {
	r.content = r.dst
	if len(r.plan.Fetch) == 0 {
		return
	}
	if b, ok := store.As[store.Batcher](r.dst); ok {
		r.content, r.flush = b.Batch()
	}
}

// closeContent makes the content written through the batch view durable, once every writer has
// stopped; when it cannot, the paths written are taken out of the state (not known to be
// durable: the next run checks them again) and the error says so.
func (r *run) closeContent(ctx context.Context) error {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	if r.flush == nil {
		return nil
	}
	flush := r.flush
	r.flush = nil
	if err := flush(ctx); err != nil {
		for _, p := range r.written {
			delete(r.st.Objects, p)
		}
		return fmt.Errorf("making the files written durable: %w", err)
	}
	return nil
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
	how    string // fetched, copied, copied from (another target), adopted
	sha256 string
	etag   string // of the object written ("" when adopted: the listing has it)
}

// transferOne brings f into the target, its content written through r.content (the batch view
// of a directory target, store.Batcher).
func (r *run) transferOne(ctx context.Context, f Fetch, copyFrom string) (res transferResult, err error) {
	if f.Size < 0 {
		// The plan refuses these (checkSizes); a negative size would turn the size check off.
		return transferResult{}, fmt.Errorf("fetching %s: %w: declared size %d", f.Path, ErrTooLarge, f.Size)
	}
	parent := ctx
	ctx, cancel := r.opts.withFileDeadline(ctx, f.Size)
	defer cancel()
	defer explainDeadline(parent, ctx, &err)
	r.opts.Progress.startFile(f.Path, f.Size)
	defer r.opts.Progress.finishFile(f.Path)
	res, done, err := r.prepare(ctx, f, copyFrom)
	if err == nil && !done {
		res, err = r.fetch(ctx, f)
	}
	if err == nil {
		r.opts.Progress.fileDone()
	}
	return res, err
}

// explainDeadline makes *err say so when the file's own deadline (ctx's, under parent) ended it,
// whatever the read or write in flight made of it.
func explainDeadline(parent, ctx context.Context, err *error) {
	if *err != nil && parent.Err() == nil && ctx.Err() != nil {
		if cause := context.Cause(ctx); !errors.Is(*err, cause) {
			*err = fmt.Errorf("%w (%w)", *err, cause)
		}
	}
}

// contentPut is how content at f is written.
func (r *run) contentPut(f Fetch) store.PutOptions {
	return store.PutOptions{
		Size:         f.Size,
		SHA256:       f.SHA256,
		ContentType:  streams.ContentType(f.Path),
		CacheControl: r.opts.ContentCacheControl,
	}
}

// prepare does what brings f into the target without fetching it: reading and checking the
// object present (f.Check) and copying it from copyFrom, another path of the target with the same
// content. done says f is in; otherwise it is to be fetched.
func (r *run) prepare(ctx context.Context, f Fetch, copyFrom string) (res transferResult, done bool, err error) {
	dst := r.content
	if f.Check {
		sum, err := hashObject(ctx, dst, f, r.opts.Progress)
		switch {
		case errors.Is(err, store.ErrChecksum): // a sha512 or md5 catalogue's hash differs
			r.opts.Log.Warn("present object differs from the catalogue; fetching it again", "path", f.Path, "error", err)
		case err != nil:
			return transferResult{}, false, err
		case f.SHA256 == "" || sum == f.SHA256:
			return transferResult{"adopted", sum, ""}, true, nil
		default:
			r.opts.Log.Warn("present object differs from the catalogue; fetching it again", "path", f.Path)
		}
	}
	if copyFrom != "" && copyFrom != f.Path && f.SHA256 != "" {
		c, _ := store.As[store.Copier](dst)
		info, err := c.Copy(ctx, f.Path, copyFrom, r.contentPut(f))
		if err == nil {
			r.opts.Progress.addPath(f.Path, f.Size)
			return transferResult{"copied", info.SHA256, info.ETag}, true, nil
		}
		r.opts.Log.Warn("server-side copy failed; fetching instead", "path", f.Path, "from", copyFrom, "error", err)
	}
	return transferResult{}, false, nil
}

// fetch downloads f from the source into the target, verified while it streams, trying again a
// download whose checksum is wrong.
func (r *run) fetch(ctx context.Context, f Fetch) (transferResult, error) {
	src, dst, put := r.src, r.content, r.contentPut(f)
	// An open that fails (the source answering 5xx or not at all) is tried again by the retrying
	// source; a complete download whose checksum is wrong, here.
	logRetry := func(attempt int, err error) {
		r.opts.Log.Warn("fetch failed; trying again", "path", f.Path, "attempt", attempt, "error", err)
	}
	rsrc := retry.NewSource(src, sourcePolicy(logRetry))
	var info store.Info
	var opened bool
	var last error
	err := retry.Do(ctx, retry.Policy{
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
	rc, noted, err := rn.openFetch(ctx, src, rsrc, f)
	if err != nil {
		return store.Info{}, false, err
	}
	defer noted()
	defer rc.Close()
	cr := newCountingReader(rc, rn.opts.Progress, f.Path)
	defer func() { rn.hub.upstreamBytes.Add(cr.n) }()
	info, err := dst.Put(ctx, f.Path, newExtraCheck(f, cr), put)
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
	v := store.NewVerifier(key, newExtraCheck(f, newCountingReader(rc, p, key)), store.PutOptions{Size: -1})
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
	case f.SHA256 != "":
		return r // the Verifier checks the sha256
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
	// counted is what the progress took of n: a file another reader or copy already counted
	// whole (a fan-out) is not counted again.
	counted int64
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

// count adds n bytes (negative: takes back bytes of an attempt that failed, at most what this
// reader counted).
func (c *countingReader) count(n int64) {
	c.counted += c.p.addFile(c.file, max(n, -c.counted))
}
