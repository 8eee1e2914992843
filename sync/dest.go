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

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync/internal/tee"
)

// dest is one target's side of the transfer stage: its run makes it as the stage starts
// (newDest), hands it to the transfer (delivery), and reads the outcome from it when the
// transfer is over. Everything the transfer changes in the run (its state's objects, its
// report) goes through dest's methods, under its lock.
type dest struct {
	r *run
	// runCtx is the run's (its lease's); ctx is what every write into the target ends with:
	// runCtx, also ended (stop) once the target is given up on (giveUp), so that its writes
	// still in flight for other files stop at once rather than each wait out its own patience.
	runCtx, ctx context.Context
	stop        context.CancelCauseFunc
	// content is what the transfer writes content through: the target's batch view
	// (store.Batcher) or the target; flush makes the batch durable (nil: no batch), and written
	// lists the paths written through it, which a failed flush takes back out of the state.
	content store.Target
	flush   func(context.Context) error

	mu      gosync.Mutex
	errs    []error
	written []string
	bySum   map[string]string // the target's content by sha256, for copies inside it (copySource)
	// saidGivenUp: the log has said it was given up on (its other files' failures then are not).
	saidGivenUp bool
}

// newDest makes r's side of the transfer, writing through ctx. A target that can make files
// durable in batches (a directory: otherwise one fsync per file, in the way of the next one)
// has the content written through its batch view, made durable by closeContent before the
// transfer stage returns: before anything that lists it is published and before the state is
// saved with it. Only the content goes through the view; the metadata written later (publish)
// and the state stay durable write by write.
func newDest(ctx context.Context, r *run) *dest {
	d := &dest{r: r, runCtx: ctx, content: r.dst}
	d.ctx, d.stop = context.WithCancelCause(ctx)
	if len(r.plan.Fetch) == 0 {
		return d
	}
	if b, ok := store.As[store.Batcher](r.dst); ok {
		d.content, d.flush = b.Batch()
	}
	return d
}

// closeContent makes the content written through the batch view durable, once every writer has
// stopped; when it cannot, the paths written are taken out of the state (not known to be
// durable: the next run checks them again) and the error says so.
func (d *dest) closeContent(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.flush == nil {
		return nil
	}
	flush := d.flush
	d.flush = nil
	if err := flush(ctx); err != nil {
		for _, p := range d.written {
			delete(d.r.st.Objects, p)
		}
		return fmt.Errorf("making the files written durable: %w", err)
	}
	return nil
}

// writing reports whether the transfer still writes into d's target: its lease holds and it has
// not been given up on (either ends d.ctx).
func (d *dest) writing() bool { return d.ctx.Err() == nil }

func anyWriting(dests []*dest) bool {
	for _, d := range dests {
		if d.writing() {
			return true
		}
	}
	return false
}

// giveUp stops the transfer into d's target for the rest of the run (tee.ErrFellBehind): no
// file starts into it any more, and its writes in flight end.
func (d *dest) giveUp() { d.stop(tee.ErrFellBehind) }

// givenUpOn reports whether d's target was given up on for the rest of the run (giveUp).
func (d *dest) givenUpOn() bool { return errors.Is(context.Cause(d.ctx), tee.ErrFellBehind) }

// holds reports whether d's target holds f as the mirror's own verified content.
func (d *dest) holds(f Fetch) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	obj, ok := d.r.st.Objects[f.Path]
	return ok && f.SHA256 != "" && obj.SHA256 == f.SHA256 && obj.Size == f.Size
}

// copySource is the object in the target under another path holding f's content, if the
// target can copy it there instead of fetching it ("" otherwise).
func (d *dest) copySource(f Fetch) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bySum == nil {
		d.bySum = map[string]string{}
		if _, ok := store.As[store.Copier](d.content); ok { // what prepare copies through
			for key, obj := range d.r.st.Objects {
				if obj.SHA256 != "" {
					if k, seen := d.bySum[obj.SHA256]; !seen || key < k {
						d.bySum[obj.SHA256] = key
					}
				}
			}
		}
	}
	return d.bySum[f.SHA256]
}

type transferResult struct {
	how    string // fetched, copied, copied from (another target), adopted
	sha256 string
	etag   string // of the object written ("" when adopted: the listing has it)
}

// note records how f came into the target, or why it did not.
func (d *dest) note(f Fetch, res transferResult, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.r
	st, rep := r.st, r.rep
	if err != nil {
		d.errs = append(d.errs, err)
		if d.runCtx.Err() == nil && !d.saidGivenUp {
			// A cancelled run says so once (the caller knows why), and a target given up on
			// once: not once per file in flight.
			r.opts.Log.Error("transfer failed", "path", f.Path, "error", err)
			d.saidGivenUp = errors.Is(err, tee.ErrFellBehind)
		}
		return
	}
	etag := res.etag
	if res.how == "adopted" { // checked as listed
		etag = st.listed[f.Path].ETag
	}
	st.Objects[f.Path] = Object{Size: f.Size, SHA256: res.sha256, ETag: etag}
	if res.how != "adopted" {
		d.written = append(d.written, f.Path)
	}
	if res.sha256 != "" && d.bySum != nil {
		if _, seen := d.bySum[res.sha256]; !seen {
			d.bySum[res.sha256] = f.Path
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

// err is the transfer's outcome in d's target: nil, or every failure, sorted, in a
// TransferError (with the interruption when its context ended).
func (d *dest) err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	errs := d.errs
	if d.runCtx.Err() != nil {
		errs = append(errs, fmt.Errorf("interrupted: %w", context.Cause(d.runCtx)))
	}
	if len(errs) == 0 {
		return nil
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return &TransferError{Errs: errs}
}

// contentPut is how content at f is written.
func (d *dest) contentPut(f Fetch) store.PutOptions {
	return store.PutOptions{
		Size:         f.Size,
		SHA256:       f.SHA256,
		ContentType:  streams.ContentType(f.Path),
		CacheControl: d.r.opts.ContentCacheControl,
	}
}

// prepare does what brings f into the target without fetching it: reading and checking the
// object present (f.Check) and copying it from another path of the target with the same
// content (copySource). done says f is in; otherwise it is to be fetched.
func (d *dest) prepare(ctx context.Context, f Fetch) (res transferResult, done bool, err error) {
	log := d.r.opts.Log
	if f.Check {
		sum, err := hashObject(ctx, d.content, f, d.r.opts.Progress)
		switch {
		case errors.Is(err, store.ErrChecksum): // a sha512 or md5 catalogue's hash differs
			log.Warn("present object differs from the catalogue; fetching it again", "path", f.Path, "error", err)
		case err != nil:
			return transferResult{}, false, err
		case f.SHA256 == "" || sum == f.SHA256:
			return transferResult{"adopted", sum, ""}, true, nil
		default:
			log.Warn("present object differs from the catalogue; fetching it again", "path", f.Path)
		}
	}
	if from := d.copySource(f); from != "" && from != f.Path && f.SHA256 != "" {
		c, _ := store.As[store.Copier](d.content)
		info, err := c.Copy(ctx, f.Path, from, d.contentPut(f))
		if err == nil {
			d.r.opts.Progress.addPath(f.Path, f.Size)
			return transferResult{"copied", info.SHA256, info.ETag}, true, nil
		}
		log.Warn("server-side copy failed; fetching instead", "path", f.Path, "from", from, "error", err)
	}
	return transferResult{}, false, nil
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
