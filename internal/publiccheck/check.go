package publiccheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// CheckOptions say what Check reads and how strictly.
type CheckOptions struct {
	// StartPath is the index to start from ("": streams/v1/index.sjson, else, when the URL
	// serves none, streams/v1/index.json).
	StartPath string
	// Keyring, when set, is what every metadata file (and a curated mirror's signed freshness
	// record) must be signed by; without it signatures are not checked.
	Keyring *sign.Keyring
	// Filters and Max select the items whose files are checked (default: every item the
	// metadata lists), as a sync's selection does: a verbatim mirror lists what upstream lists,
	// and holds only what its selection covers.
	Filters streams.Filters
	Max     int
	Files   FilesOptions
	// MaxAge, when not zero, makes a mirror whose last publish (or last successful run, when
	// its lease is readable) is older than this fail the check.
	MaxAge time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// CheckReport is what Check found.
type CheckReport struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	URL   string `json:"url"`
	// Index is the index read, IndexUpdated its "updated".
	Index        string `json:"index"`
	IndexUpdated string `json:"index_updated"`
	// Verified is true when every metadata signature was checked against the keyring.
	Verified bool  `json:"signatures_verified"`
	Products int   `json:"products_files"`
	Items    int   `json:"items"`
	Files    int   `json:"files"`
	Bytes    int64 `json:"bytes"`
	Hashed   int   `json:"files_hashed"`
	// Missing lists the files not served as listed; Stale the metadata served in another
	// version than the freshness record names (a cache holding one of them longer).
	Missing []Problem `json:"missing"`
	Stale   []Problem `json:"stale"`
	// Freshness is the freshness record served (null: none); FreshnessVerified says whether its
	// signed form was checked against the keyring.
	Freshness         *sync.Freshness `json:"freshness"`
	FreshnessVerified bool            `json:"freshness_verified"`
	// LastSuccess is when a run last succeeded, from the mirror's lease when the URL serves it.
	LastSuccess *time.Time `json:"last_success"`
	// AgeSeconds is how long ago the newest of the record's publish and the last success was
	// (null: neither is known); TooOld is true when that is more than MaxAge.
	AgeSeconds    *float64 `json:"age_seconds"`
	MaxAgeSeconds *float64 `json:"max_age_seconds,omitempty"`
	TooOld        bool     `json:"too_old"`
}

// Check reads the mirror through c as a site would: the index and every products file (their
// signatures against opts.Keyring), every file the selected items name (CheckFiles), the
// freshness record, which must name the metadata served, and the lease's last success. An
// error is returned when the metadata cannot be read at all; everything else is in the report.
func (c *Client) Check(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	rep := &CheckReport{URL: c.Base.String(), Missing: []Problem{}, Stale: []Problem{}}
	src, err := httpstore.New(c.HTTP, c.Base.String(), httpstore.Options{UserAgent: c.UserAgent, Retries: -1})
	if err != nil {
		return nil, err
	}
	v := sync.Verification{Keyring: opts.Keyring, NoVerify: opts.Keyring == nil}
	start := opts.StartPath
	if start == "" {
		start = sync.DefaultStartPath
	}
	cat, err := sync.LoadCatalogue(ctx, src, start, v, MetadataLimit, 4)
	if opts.StartPath == "" && errors.Is(err, store.ErrNotExist) {
		start = sync.UnsignedStartPath
		cat, err = sync.LoadCatalogue(ctx, src, start, v, MetadataLimit, 4)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the metadata through %s: %w", c.Base, err)
	}
	rep.Index, rep.IndexUpdated, rep.Verified = start, cat.Index.Updated, opts.Keyring != nil
	rep.Products = len(cat.Products)
	served := map[string][]byte{}
	for _, mf := range cat.IndexForms {
		served[mf.Key] = mf.Data
	}
	for _, pf := range cat.Products {
		for _, mf := range pf.Forms {
			served[mf.Key] = mf.Data
		}
	}

	plan := sync.MakePlan(sync.PlanInput{Upstream: cat.Items(), Filters: opts.Filters, Max: opts.Max})
	rep.Items = plan.Held.Items()
	files := HeldFiles(plan.Held)
	for _, f := range files {
		rep.Bytes += f.Size
	}
	rep.Files = len(files)
	rep.Missing, rep.Hashed, err = c.CheckFiles(ctx, files, opts.Files)
	if err != nil {
		return nil, err
	}

	if err := c.checkRecord(ctx, rep, served, opts.Keyring); err != nil {
		return nil, err
	}
	if resp, err := c.Get(ctx, sync.LockKey, 1<<16); err == nil && resp.Status == 200 {
		var l sync.Lease
		if json.Unmarshal(resp.Body, &l) == nil && l.LastSuccess != nil {
			t := l.LastSuccess.UTC()
			rep.LastSuccess = &t
		}
	}
	var newest time.Time
	if rep.Freshness != nil {
		newest = rep.Freshness.Published
	}
	if rep.LastSuccess != nil && rep.LastSuccess.After(newest) {
		newest = *rep.LastSuccess
	}
	if !newest.IsZero() {
		rep.AgeSeconds = seconds(now().Sub(newest))
	}
	if opts.MaxAge > 0 {
		rep.MaxAgeSeconds = seconds(opts.MaxAge)
		rep.TooOld = newest.IsZero() || now().Sub(newest) > opts.MaxAge
	}
	sortProblems(rep.Missing)
	sortProblems(rep.Stale)
	rep.OK = len(rep.Missing) == 0 && len(rep.Stale) == 0 && !rep.TooOld
	return rep, nil
}

// checkRecord reads the freshness record (and, for a curated mirror checked with a keyring,
// its signed form) and compares the metadata it names with what was served.
func (c *Client) checkRecord(ctx context.Context, rep *CheckReport, served map[string][]byte, kr *sign.Keyring) error {
	resp, err := c.Get(ctx, sync.FreshnessKey, 1<<22)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rep.Missing = append(rep.Missing, Problem{sync.FreshnessKey, "error", err.Error()})
		return nil
	}
	if resp.Status != 200 {
		if !resp.missing() {
			rep.Missing = append(rep.Missing, statusProblem(sync.FreshnessKey, resp.Status))
		}
		return nil // a mirror written by an older ssmirror has none
	}
	f, err := sync.ParseFreshness(resp.Body)
	if err != nil {
		rep.Missing = append(rep.Missing, Problem{sync.FreshnessKey, "content", err.Error()})
		return nil
	}
	rep.Freshness = f
	if kr != nil && f.Mode == "curated" {
		sresp, err := c.Get(ctx, sync.FreshnessSignedKey, 1<<22)
		switch {
		case err != nil:
			rep.Missing = append(rep.Missing, Problem{sync.FreshnessSignedKey, "error", err.Error()})
		case sresp.Status != 200:
			rep.Missing = append(rep.Missing, statusProblem(sync.FreshnessSignedKey, sresp.Status))
		default:
			body, err := sign.VerifyClearsigned(sync.FreshnessSignedKey, sresp.Body, kr)
			switch {
			case err != nil:
				rep.Missing = append(rep.Missing, Problem{sync.FreshnessSignedKey, "signature", err.Error()})
			case !bytes.Equal(bytes.TrimSpace(body), bytes.TrimSpace(resp.Body)):
				rep.Stale = append(rep.Stale, Problem{sync.FreshnessSignedKey, "stale", "the signed record is not the plain one (a cache holds one of them longer)"})
			default:
				rep.FreshnessVerified = true
			}
		}
	}
	for _, m := range f.Metadata {
		data, ok := served[m.Path]
		if !ok {
			r, err := c.Get(ctx, m.Path, MetadataLimit)
			if err != nil || r.Status != 200 {
				status := 0
				if r != nil {
					status = r.Status
				}
				if err != nil {
					rep.Missing = append(rep.Missing, Problem{m.Path, "error", err.Error()})
				} else {
					rep.Missing = append(rep.Missing, statusProblem(m.Path, status))
				}
				continue
			}
			data = r.Body
		}
		if sum := hexSum(data); sum != m.SHA256 {
			rep.Stale = append(rep.Stale, Problem{m.Path, "stale", fmt.Sprintf(
				"served sha256 %s, the freshness record (published %s) names %s: a cache serves one of them in an older version",
				sum, f.Published.UTC().Format(time.RFC3339), m.SHA256)})
		}
	}
	return nil
}
