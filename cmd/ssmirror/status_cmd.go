package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

const statusUsage = `Usage: ssmirror status [flags] [TARGET]

Show what a mirror holds, from its own record (.ssmirror/state.json): per product and version,
items, files and bytes; the totals; when a run last succeeded; when its metadata was last
published and its state last written; whether a run holds its lock; and what waits for deletion, and when (the grace period
is --gc-grace, as given to sync). Read-only: it takes no lock and writes nothing.

Exit status 0: shown; 1: no ssmirror mirror at TARGET, or it could not be read; 2: bad command
line.

TARGET  /srv/mirror  or  file:///srv/mirror  or  s3://bucket/prefix[?profile=NAME&...]
        (see ssmirror help sync); may be left out when the configuration names one target.

Settings come from flags, $SSMIRROR_* and the config file as for sync (--config or
$SSMIRROR_CONFIG; its other commands' settings are left to them; a [target] section gives the
target its storage settings); with a file of [mirror NAME] sections, --only-mirror NAME picks
the section, else the one listing TARGET.

Examples:
  ssmirror status /srv/maas-images
  ssmirror status --config /etc/ssmirror/maas.conf
  ssmirror status --json s3://maas-images/stable | jq .totals
`

// heldTotals counts what a Held set holds. Files and bytes count each distinct path once (two
// versions may share a file).
type heldTotals struct {
	Products int   `json:"products"`
	Versions int   `json:"versions"`
	Items    int   `json:"items"`
	Files    int   `json:"files"`
	Bytes    int64 `json:"bytes"`
}

func totalsOf(h sync.Held) heldTotals {
	var t heldTotals
	products := map[[2]string]bool{}
	paths := map[string]bool{}
	for vk, hv := range h {
		products[[2]string{vk.ContentID, vk.Product}] = true
		t.Versions++
		for _, it := range hv {
			t.Items++
			if it.Path != "" && !paths[it.Path] {
				paths[it.Path] = true
				t.Files++
				t.Bytes += it.Size
			}
		}
	}
	t.Products = len(products)
	return t
}

type statusVersion struct {
	Version string `json:"version"`
	Items   int    `json:"items"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`
}

type statusProduct struct {
	ContentID string          `json:"content_id"`
	Product   string          `json:"product"`
	Versions  []statusVersion `json:"versions"`
}

type statusPending struct {
	Path  string    `json:"path"`
	Size  int64     `json:"size"`
	Since time.Time `json:"unreferenced_since"`
	// Due is when a run (or gc) may delete it; null with a negative grace (never).
	Due *time.Time `json:"due"`
}

type statusLock struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
}

type statusReport struct {
	Target   string          `json:"target"`
	Totals   heldTotals      `json:"totals"`
	Products []statusProduct `json:"products"`
	// MetadataFiles are the metadata objects recorded as published; LastPublished is the newest
	// modification time among them (when the published catalogue last changed).
	MetadataFiles int        `json:"metadata_files"`
	LastPublished *time.Time `json:"last_published"`
	// StateWritten is when the state was last written (at the end of a run that changed it).
	StateWritten *time.Time `json:"state_written"`
	// LastSuccess is when a run last finished its work (recorded in the lock's lease), null
	// before the first.
	LastSuccess *time.Time `json:"last_success"`
	// Lock is the lease of a run holding the target, null when none does.
	Lock         *statusLock     `json:"lock"`
	GCGrace      string          `json:"gc_grace"`
	Pending      []statusPending `json:"pending_deletion"`
	PendingBytes int64           `json:"pending_deletion_bytes"`
}

// runStatus shows what a mirror holds.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		s3f     cliconfig.S3Flags
		grace   time.Duration
		jsonOut bool
	)
	fs := newFlagSet("status", statusUsage, stdout)
	fs.BoolVar(&jsonOut, "json", false, "print the status as JSON")
	fs.Var(units.NewDuration(&grace, sync.DefaultGCGrace), "gc-grace", "the grace period sync runs with, to say when waiting objects are due (negative: never)")
	s3f.AddFlags(fs)
	hideUploadFlags(fs)
	mirror := addOneTargetFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dst, err := openOneTarget(ctx, fs, &s3f, "status", *mirror, true, nil)
	if err != nil {
		return jsonFailed(ctx, stdout, jsonOut, err)
	}
	rep, err := mirrorStatus(ctx, dst.Store, grace)
	if err != nil {
		return jsonFailed(ctx, stdout, jsonOut, err)
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printStatus(stdout, rep)
	return nil
}

// mirrorStatus reads the mirror's state, the modification times of its metadata and state, and
// its lock, without taking the lock or writing anything.
func mirrorStatus(ctx context.Context, dst store.Target, grace time.Duration) (*statusReport, error) {
	target := store.Describe(dst)
	info, err := dst.Stat(ctx, sync.StateKey)
	if errors.Is(err, store.ErrNotExist) {
		return nil, fmt.Errorf("%s holds no ssmirror mirror (no %s): nothing was mirrored there yet, or the target is mistyped", target, sync.StateKey)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sync.StateKey, err)
	}
	st, err := sync.LoadState(ctx, dst)
	if err != nil {
		return nil, err
	}
	rep := &statusReport{Target: target, Totals: totalsOf(st.Held), Products: []statusProduct{}, Pending: []statusPending{}, GCGrace: units.FormatDuration(grace)}
	written := info.ModTime.UTC()
	rep.StateWritten = &written

	// Per product, versions in order.
	byProduct := map[[2]string]*statusProduct{}
	for vk, hv := range st.Held {
		k := [2]string{vk.ContentID, vk.Product}
		p := byProduct[k]
		if p == nil {
			p = &statusProduct{ContentID: vk.ContentID, Product: vk.Product}
			byProduct[k] = p
		}
		t := totalsOf(sync.Held{vk: hv})
		p.Versions = append(p.Versions, statusVersion{Version: vk.Version, Items: t.Items, Files: t.Files, Bytes: t.Bytes})
	}
	for _, p := range byProduct {
		sort.Slice(p.Versions, func(i, j int) bool { return p.Versions[i].Version < p.Versions[j].Version })
		rep.Products = append(rep.Products, *p)
	}
	sort.Slice(rep.Products, func(i, j int) bool {
		a, b := rep.Products[i], rep.Products[j]
		if a.ContentID != b.ContentID {
			return a.ContentID < b.ContentID
		}
		return a.Product < b.Product
	})

	// When the published catalogue last changed.
	rep.MetadataFiles = len(st.Published)
	for key := range st.Published {
		mi, err := dst.Stat(ctx, key)
		if err != nil {
			continue // missing metadata is verify's business
		}
		if rep.LastPublished == nil || mi.ModTime.After(*rep.LastPublished) {
			t := mi.ModTime.UTC()
			rep.LastPublished = &t
		}
	}

	// A run in progress.
	if data, err := store.ReadAll(ctx, dst, sync.LockKey, 1<<16); err == nil {
		var l sync.Lease
		if json.Unmarshal(data, &l) == nil && l.LastSuccess != nil {
			t := l.LastSuccess.UTC()
			rep.LastSuccess = &t
		}
		switch {
		case json.Unmarshal(data, &l) != nil:
			rep.Lock = &statusLock{}
		case l.Released:
			// The lease object stays after a run, marked released: no run holds the target.
		default:
			rep.Lock = &statusLock{Host: l.Host, PID: l.PID, Started: l.Started, Expires: l.Expires}
		}
	} else if !errors.Is(err, store.ErrNotExist) {
		return nil, fmt.Errorf("reading the lock: %w", err)
	}

	// What waits for deletion.
	for key, since := range st.Unreferenced {
		p := statusPending{Path: key, Size: st.Objects[key].Size, Since: since.UTC()}
		if grace >= 0 {
			due := since.Add(grace).UTC()
			p.Due = &due
		}
		rep.Pending = append(rep.Pending, p)
		rep.PendingBytes += p.Size
	}
	sort.Slice(rep.Pending, func(i, j int) bool {
		a, b := rep.Pending[i], rep.Pending[j]
		if !a.Since.Equal(b.Since) {
			return a.Since.Before(b.Since)
		}
		return a.Path < b.Path
	})
	return rep, nil
}

func printStatus(w io.Writer, r *statusReport) {
	t := r.Totals
	fmt.Fprintf(w, "%s: %d products, %d versions, %d items in %d files (%s)\n",
		r.Target, t.Products, t.Versions, t.Items, t.Files, humanBytes(t.Bytes))
	stamp := func(p *time.Time) string {
		if p == nil {
			return "unknown"
		}
		return p.Format(time.RFC3339)
	}
	fmt.Fprintf(w, "last successful run: %s\n", stamp(r.LastSuccess))
	fmt.Fprintf(w, "metadata: %d files, last published %s; state written %s\n", r.MetadataFiles, stamp(r.LastPublished), stamp(r.StateWritten))
	switch {
	case r.Lock == nil:
		fmt.Fprintln(w, "lock: free (no run in progress)")
	case r.Lock.Host == "" && r.Lock.PID == 0:
		fmt.Fprintln(w, "lock: present but unreadable")
	default:
		fmt.Fprintf(w, "lock: held by host %s, pid %d, since %s, lease until %s\n", r.Lock.Host, r.Lock.PID,
			r.Lock.Started.UTC().Format(time.RFC3339), r.Lock.Expires.UTC().Format(time.RFC3339))
	}
	if len(r.Pending) == 0 {
		fmt.Fprintln(w, "waiting for deletion: nothing")
	} else {
		fmt.Fprintf(w, "waiting for deletion: %d files (%s), grace %s:\n", len(r.Pending), humanBytes(r.PendingBytes), r.GCGrace)
		for _, p := range r.Pending {
			due := "never (negative grace)"
			if p.Due != nil {
				due = "due " + p.Due.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "  %s (%s): unreferenced since %s, %s\n", p.Path, humanBytes(p.Size), p.Since.Format(time.RFC3339), due)
		}
	}
	for _, p := range r.Products {
		fmt.Fprintf(w, "%s %s\n", p.ContentID, p.Product)
		for _, v := range p.Versions {
			fmt.Fprintf(w, "  %s: %d items, %d files, %s\n", v.Version, v.Items, v.Files, humanBytes(v.Bytes))
		}
	}
}
