package cliconfig

import (
	"slices"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/internal/publiccheck"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

// Summary is the JSON summary of a sync: ssmirror --json prints one for every run, a dry run
// and a run that failed before it began included; the Lambda function returns one. Lists are
// empty rather than null.
type Summary struct {
	OK              bool          `json:"ok"`
	Error           string        `json:"error"`
	Source          string        `json:"source"`
	Target          string        `json:"target"`
	DryRun          bool          `json:"dry_run"`
	Seconds         float64       `json:"seconds"`
	Curated         bool          `json:"curated"`
	ItemsAdded      int           `json:"items_added"`
	ItemsRemoved    int           `json:"items_removed"`
	ItemsKept       int           `json:"items_kept"`
	FilesToFetch    int           `json:"files_to_fetch"`
	BytesToFetch    int64         `json:"bytes_to_fetch"`
	FilesFetched    int           `json:"files_fetched"`
	BytesFetched    int64         `json:"bytes_fetched"`
	FilesCopied     int           `json:"files_copied"`
	BytesCopied     int64         `json:"bytes_copied"`
	FilesAdopted    int           `json:"files_adopted"`
	Drifted         []string      `json:"drifted"`
	MetadataWritten []string      `json:"metadata_written"`
	Deleted         []string      `json:"deleted"`
	PendingDeletion int           `json:"pending_deletion"`
	Added           []planItem    `json:"added"`
	Removed         []planItem    `json:"removed"`
	Stages          []stageTiming `json:"stages"`
	// CloudFrontInvalidation is the id of the invalidation created after the publish.
	CloudFrontInvalidation string `json:"cloudfront_invalidation,omitempty"`

	// FreedBytes is what the deletions freed; on a versioned or object-locked bucket (Versioning)
	// only the noncurrent versions purged count (--gc-purge-versions), and VersionsKept counts
	// the deleted objects whose bytes stay.
	FreedBytes   int64             `json:"freed_bytes"`
	VersionsKept int               `json:"versions_kept"`
	Versioning   *store.Versioning `json:"versioning,omitempty"`
	// NotAtSource lists the selected items (content_id/product/version/item) left out because the
	// source, another ssmirror mirror (a hub), does not hold them; NotAtSourceHint is a filter
	// that says so. Empty unless the source is such a mirror holding less than its catalogue lists.
	NotAtSource     []string `json:"not_at_source"`
	NotAtSourceHint string   `json:"not_at_source_hint,omitempty"`
	// PublicURL is what the target's public URL served after the publish (--public-url).
	PublicURL *publiccheck.ReadBackResult `json:"public_url,omitempty"`

	// A fan-out run (several targets) only. The fields above keep their meaning for the run as
	// a whole: ok is true when every target published, error names the targets that failed,
	// target lists the targets separated by ", ", the counts are sums over the targets, and the
	// plan's fields (items, files to fetch, added, removed) are the first planned target's.
	// FilesCopiedFrom and BytesCopiedFrom count files copied server-side from another target of
	// the run; UpstreamBytes the content bytes read from upstream, each file once whatever the
	// number of targets; Targets has one summary per target, in the order given, each as a
	// single-target run's (without the targets and upstream_bytes fields). Drifted,
	// metadata_written and deleted name each key written or deleted in any target once.
	FilesCopiedFrom int       `json:"files_copied_from,omitempty"`
	BytesCopiedFrom int64     `json:"bytes_copied_from,omitempty"`
	UpstreamBytes   *int64    `json:"upstream_bytes,omitempty"`
	Targets         []Summary `json:"targets,omitempty"`
}

type planItem struct {
	Product string `json:"product"`
	Version string `json:"version"`
	Item    string `json:"item"`
	Path    string `json:"path"`
	Size    int64  `json:"size"`
}

type stageTiming struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Summarize builds the summary of a run; rep may be nil (a run that failed before it began) or
// lack a plan. source and target are shown as they are: strip their user info first.
func Summarize(source, target string, dryRun bool, rep *sync.Report, took time.Duration, runErr error) Summary {
	out := Summary{
		OK: runErr == nil, Source: source, Target: target, DryRun: dryRun, Seconds: took.Seconds(),
		Drifted: []string{}, MetadataWritten: []string{}, Deleted: []string{}, NotAtSource: []string{},
		Added: []planItem{}, Removed: []planItem{}, Stages: []stageTiming{},
	}
	if runErr != nil {
		out.Error = runErr.Error()
	}
	if rep == nil {
		return out
	}
	out.Curated = rep.Curated
	for _, k := range rep.Source.LeftOut {
		out.NotAtSource = append(out.NotAtSource, k.String())
	}
	out.NotAtSourceHint = rep.Source.Hint
	if p := rep.Plan; p != nil {
		out.ItemsAdded, out.ItemsRemoved, out.ItemsKept = len(p.Added), len(p.Removed), p.Kept
		out.FilesToFetch, out.BytesToFetch = len(p.Fetch), p.FetchBytes()
		if dryRun {
			for _, c := range p.Added {
				out.Added = append(out.Added, planItem{c.Product, c.Version, c.Item, c.Path, c.Size})
			}
			for _, c := range p.Removed {
				out.Removed = append(out.Removed, planItem{c.Product, c.Version, c.Item, c.Path, c.Size})
			}
		}
	}
	out.FilesFetched, out.BytesFetched = rep.Fetched, rep.FetchedBytes
	out.FilesCopied, out.BytesCopied = rep.Copied, rep.CopiedBytes
	out.FilesCopiedFrom, out.BytesCopiedFrom = rep.CopiedFrom, rep.CopiedFromBytes
	out.FilesAdopted, out.PendingDeletion = rep.Adopted, rep.PendingDeletion
	out.FreedBytes, out.VersionsKept, out.Versioning = rep.FreedBytes, rep.VersionsKept, rep.Versioning
	if rep.Drifted != nil {
		out.Drifted = rep.Drifted
	}
	if rep.MetadataWritten != nil {
		out.MetadataWritten = rep.MetadataWritten
	}
	if rep.Deleted != nil {
		out.Deleted = rep.Deleted
	}
	for _, s := range rep.Stages {
		out.Stages = append(out.Stages, stageTiming{s.Name, s.Duration.Seconds()})
	}
	return out
}

// SummarizeTargets builds the summary of a fan-out run (several targets; see Summary): fr may be
// nil (a run that failed before it began), targets are as given (strip their user info first).
func SummarizeTargets(source string, targets []string, dryRun bool, fr *sync.FanOutReport, took time.Duration, runErr error) Summary {
	out := Summarize(source, strings.Join(targets, ", "), dryRun, nil, took, runErr)
	var upstream int64
	out.UpstreamBytes = &upstream
	if fr == nil {
		return out
	}
	upstream = fr.UpstreamBytes
	planned := false
	for i, t := range fr.Targets {
		name := t.Target
		if i < len(targets) {
			name = targets[i]
		}
		ts := Summarize(source, name, dryRun, t.Report, took, t.Err)
		ts.Targets = nil
		out.Targets = append(out.Targets, ts)
		if t.Report == nil {
			continue
		}
		if !planned && t.Report.Plan != nil {
			planned = true
			out.Curated = ts.Curated
			out.ItemsAdded, out.ItemsRemoved, out.ItemsKept = ts.ItemsAdded, ts.ItemsRemoved, ts.ItemsKept
			out.FilesToFetch, out.BytesToFetch = ts.FilesToFetch, ts.BytesToFetch
			out.Added, out.Removed = ts.Added, ts.Removed
		}
		out.FilesFetched += ts.FilesFetched
		out.BytesFetched += ts.BytesFetched
		out.FilesCopied += ts.FilesCopied
		out.BytesCopied += ts.BytesCopied
		out.FilesCopiedFrom += ts.FilesCopiedFrom
		out.BytesCopiedFrom += ts.BytesCopiedFrom
		out.FilesAdopted += ts.FilesAdopted
		out.PendingDeletion += ts.PendingDeletion
		out.FreedBytes += ts.FreedBytes
		out.VersionsKept += ts.VersionsKept
		out.Drifted = appendNew(out.Drifted, ts.Drifted)
		out.MetadataWritten = appendNew(out.MetadataWritten, ts.MetadataWritten)
		out.Deleted = appendNew(out.Deleted, ts.Deleted)
	}
	return out
}

// appendNew appends to list the keys of more it does not hold yet: the lists of a fan-out run's
// summary name each key once, whatever the number of targets it was written in.
func appendNew(list, more []string) []string {
	for _, k := range more {
		if !slices.Contains(list, k) {
			list = append(list, k)
		}
	}
	return list
}
