package publiccheck

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

// MetadataLimit caps one metadata file read through the public URL.
const MetadataLimit = sync.DefaultMetadataLimit

// Expect is what a publish left in the target, which the public URL should now serve.
type Expect struct {
	// Record is the freshness record as written (sync.FreshnessKey): the metadata it lists
	// (each with its sha256) and itself are what the public URL must serve.
	Record []byte
	// Files are the content files the mirror holds.
	Files []File
}

// ExpectPublished is what a run that published into dst must find served: the freshness record
// it left in the target, and (withFiles: a run that holds content) the files its plan holds.
func ExpectPublished(ctx context.Context, dst store.Target, plan *sync.Plan, withFiles bool) (Expect, error) {
	rec, err := store.ReadAll(ctx, dst, sync.FreshnessKey, 1<<22)
	if err != nil {
		return Expect{}, fmt.Errorf("the target's freshness record: %w", err)
	}
	e := Expect{Record: rec}
	if plan != nil && withFiles {
		e.Files = HeldFiles(plan.Held)
	}
	return e, nil
}

// ReadBackOptions say how long to wait and how to check.
type ReadBackOptions struct {
	// Wait bounds how long the metadata is read again while the public URL still serves an
	// older version (0: read once).
	Wait time.Duration
	// Poll is the first pause between two readings (0: 250ms); it grows by half at each round,
	// up to 4 times itself (1s by default): the measured times are that precise.
	Poll  time.Duration
	Files FilesOptions
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ReadBackResult says what the public URL served after a publish.
type ReadBackResult struct {
	URL string `json:"url"`
	// IndexSeconds is how long after the read-back began the public URL first served the index
	// just published, RecordSeconds the freshness record, CurrentSeconds every metadata file
	// and the record; null when not within the wait.
	IndexSeconds   *float64 `json:"index_seconds"`
	RecordSeconds  *float64 `json:"record_seconds"`
	CurrentSeconds *float64 `json:"current_seconds"`
	WaitedSeconds  float64  `json:"waited_seconds"`
	// Stale lists the metadata still served in another version once the wait was over; Missing
	// what is not served as published (metadata or content: missing, another size or content,
	// no answer).
	Stale        []Problem `json:"stale"`
	Missing      []Problem `json:"missing"`
	FilesChecked int       `json:"files_checked"`
	FilesHashed  int       `json:"files_hashed"`
}

// OK reports whether the public URL served everything as published.
func (r *ReadBackResult) OK() bool { return len(r.Stale) == 0 && len(r.Missing) == 0 }

// Err is the read-back's failure as an error (nil when OK).
func (r *ReadBackResult) Err() error {
	if r.OK() {
		return nil
	}
	var parts []string
	if len(r.Stale) > 0 {
		parts = append(parts, fmt.Sprintf("%d stale after %.1fs (%s)", len(r.Stale), r.WaitedSeconds, firstFew(r.Stale)))
	}
	if len(r.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("%d missing or wrong (%s)", len(r.Missing), firstFew(r.Missing)))
	}
	return fmt.Errorf("the public URL %s serves what was not published: %s", r.URL, strings.Join(parts, "; "))
}

func firstFew(ps []Problem) string {
	var s []string
	for i, p := range ps {
		if i == 3 {
			s = append(s, fmt.Sprintf("and %d more", len(ps)-3))
			break
		}
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

// ReadBack reads what was just published back through the public URL: the index and the
// freshness record, again and again until they are the ones published or opts.Wait passes,
// then (once the index is new) every other metadata file the record lists the same way, then
// every file in expect.Files (CheckFiles). It fails only when it cannot begin (an unreadable
// record, a URL that never answers, a cancelled context); what the URL serves wrong is in the
// result.
func (c *Client) ReadBack(ctx context.Context, expect Expect, opts ReadBackOptions) (*ReadBackResult, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	rec, err := sync.ParseFreshness(expect.Record)
	if err != nil {
		return nil, err
	}
	rb := &readBack{c: c, rec: rec, now: now, res: &ReadBackResult{URL: c.Base.String(), Stale: []Problem{}, Missing: []Problem{}},
		want: map[string]string{sync.FreshnessKey: hexSum(expect.Record)}, pending: map[string]bool{},
		last: map[string]*Response{}, lastErr: map[string]error{}}
	for _, m := range rec.Metadata {
		rb.want[m.Path] = m.SHA256
	}
	if _, ok := rb.want[rec.Index]; !ok {
		return nil, fmt.Errorf("freshness record: the index %s is not among its metadata", rec.Index)
	}
	for k := range rb.want {
		rb.pending[k] = true
	}
	if err := rb.poll(ctx, opts); err != nil {
		return nil, err
	}
	res := rb.res
	if rb.last[rec.Index] == nil && rb.last[sync.FreshnessKey] == nil && rb.lastErr[rec.Index] != nil {
		// Not a single answer: the URL is wrong or down, not stale.
		return nil, fmt.Errorf("the public URL %s does not answer: %w", c.Base, rb.lastErr[rec.Index])
	}
	if err := rb.judge(ctx); err != nil {
		return nil, err
	}
	files, hashed, err := c.CheckFiles(ctx, expect.Files, opts.Files)
	if err != nil {
		return nil, err
	}
	res.Missing = append(res.Missing, files...)
	sortProblems(res.Missing)
	res.FilesChecked, res.FilesHashed = len(expect.Files), hashed
	return res, nil
}

// readBack is one ReadBack under way: what the metadata must be (want, by key), what is not yet
// served as published (pending), and the last answer for each key.
type readBack struct {
	c       *Client
	rec     *sync.Freshness
	now     func() time.Time
	res     *ReadBackResult
	want    map[string]string
	pending map[string]bool
	last    map[string]*Response
	lastErr map[string]error
	start   time.Time
}

// get reads key and takes it off pending when it is served as published.
func (rb *readBack) get(ctx context.Context, key string) (current bool, err error) {
	resp, err := rb.c.Get(ctx, key, MetadataLimit)
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	rb.last[key], rb.lastErr[key] = resp, err
	if err == nil && resp.Status == 200 && hexSum(resp.Body) == rb.want[key] {
		delete(rb.pending, key)
		return true, nil
	}
	return false, nil
}

// poll reads the index and the record every round, the rest once the index is the new one (a
// products file is small beside the wait, but large beside a poll), until everything is served
// as published or opts.Wait passes.
func (rb *readBack) poll(ctx context.Context, opts ReadBackOptions) error {
	rb.start = rb.now()
	deadline := rb.start.Add(opts.Wait)
	pause := opts.Poll
	if pause <= 0 {
		pause = 250 * time.Millisecond
	}
	maxPause := 4 * pause
	for {
		indexNew := !rb.pending[rb.rec.Index]
		for key := range rb.pending {
			if !indexNew && key != rb.rec.Index && key != sync.FreshnessKey {
				continue
			}
			current, err := rb.get(ctx, key)
			if err != nil {
				return err
			}
			if current {
				rb.noteCurrent(key)
			}
		}
		if len(rb.pending) == 0 {
			rb.res.CurrentSeconds = seconds(rb.now().Sub(rb.start))
			break
		}
		if !rb.now().Before(deadline) {
			break
		}
		if indexNew && !rb.pending[sync.FreshnessKey] {
			continue // the rest of the metadata: read it at once
		}
		t := time.NewTimer(min(pause, deadline.Sub(rb.now())))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(pause+pause/2, maxPause)
	}
	rb.res.WaitedSeconds = rb.now().Sub(rb.start).Seconds()
	return nil
}

// noteCurrent notes when the index or the record was first served as published.
func (rb *readBack) noteCurrent(key string) {
	at := rb.now().Sub(rb.start)
	switch key {
	case rb.rec.Index:
		rb.res.IndexSeconds = seconds(at)
	case sync.FreshnessKey:
		rb.res.RecordSeconds = seconds(at)
	}
}

// judge reads once what the wait left unread, then reports every key still pending as stale
// (served, but not as published) or missing.
func (rb *readBack) judge(ctx context.Context) error {
	for key := range rb.pending {
		if rb.last[key] == nil && rb.lastErr[key] == nil { // not read while the index was an older one
			if _, err := rb.get(ctx, key); err != nil {
				return err
			}
		}
	}
	res := rb.res
	for key := range rb.pending {
		resp, err := rb.last[key], rb.lastErr[key]
		switch {
		case err != nil:
			res.Missing = append(res.Missing, Problem{key, "error", err.Error()})
		case resp.missing(), resp.Status != 200:
			res.Missing = append(res.Missing, statusProblem(key, resp.Status))
		default:
			detail := fmt.Sprintf("served sha256 %s, published %s", hexSum(resp.Body), rb.want[key])
			if note := resp.cacheNote(); note != "" {
				detail += "; " + note
			}
			res.Stale = append(res.Stale, Problem{key, "stale", detail})
		}
	}
	sortProblems(res.Stale)
	return nil
}

// HeldFiles are the content files of held, each once, sorted by path.
func HeldFiles(held sync.Held) []File {
	seen := map[string]bool{}
	var out []File
	for _, k := range held.Keys() {
		for _, it := range held[k] {
			if it.Path == "" || seen[it.Path] {
				continue
			}
			seen[it.Path] = true
			out = append(out, File{Path: it.Path, Size: it.Size, SHA256: it.SHA256})
		}
	}
	sortFiles(out)
	return out
}

func sortFiles(fs []File) {
	slices.SortFunc(fs, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
}
