package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/smithy-go"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

const statusUsage = `Usage: ssmirror status [flags] [TARGET]

Show what a mirror holds, from its own record (.ssmirror/state.json): per product and version,
items, files and bytes; the totals; how it is published (verbatim, or curated and with which
key); when a run last succeeded; when its metadata was last published and its state last
written; the freshness record the last run published (.ssmirror/freshness.json:
upstream, mode, the index's updated, the newest version of each products file); whether a
run holds its lock (a first sync in progress included); whether the target
holds every file the published metadata promises; what an interrupted run fetched and kept for
the next run; and what waits for deletion, and when (the grace period is --gc-grace, as given
to sync). A missing bucket, refused credentials and an endpoint that cannot be reached are
said as such. Read-only: it takes no lock and writes nothing.

Exit status 0: shown; 1: no ssmirror mirror at TARGET or it could not be read, or, with
--max-age, its last success is older than that or it lacks files its metadata promises; 2: bad
command line. With --json every outcome, failures included, is printed as JSON.

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
  ssmirror status --max-age 26h s3://maas-images/stable || alert   # a monitor
`

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

type statusKept struct {
	Path  string    `json:"path"`
	Size  int64     `json:"size"`
	Since time.Time `json:"kept_since"`
}

type statusReport struct {
	// OK is false when status found a problem worth an alert: no mirror, an error reading it,
	// files its metadata promises missing, or (--max-age) a last success too old.
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Target string `json:"target"`
	// FirstSync is true while a run holds the lock of a target that has no record yet.
	FirstSync bool `json:"first_sync_in_progress"`
	// Mode is how the target is published (null before its first publish).
	Mode *sync.Mode `json:"mode"`
	// Missing are the held files (and published metadata files) the target's listing lacks or
	// shows with another size than recorded: what the metadata promises and the target does
	// not hold. Consistent is true when there are none.
	Missing    []string `json:"missing"`
	Consistent bool     `json:"consistent"`
	// Kept are the files an interrupted or failed run fetched for a publish that did not happen:
	// the next run publishes them without fetching them again.
	Kept      []statusKept `json:"kept_for_next_run"`
	KeptBytes int64        `json:"kept_for_next_run_bytes"`
	// Unrecorded counts content files the target holds that its record does not name: an
	// interrupted run's files not yet recorded (a directory target records them only with the
	// publish; the next run checks and adopts them) or files that are not the mirror's.
	Unrecorded      int             `json:"unrecorded_files"`
	UnrecordedBytes int64           `json:"unrecorded_bytes"`
	Totals          heldTotals      `json:"totals"`
	Products        []statusProduct `json:"products"`
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
	// Versioning is what the bucket does with deleted objects (S3 only; omitted when unknown).
	Versioning *store.Versioning `json:"versioning,omitempty"`
	// Freshness is the freshness record the last run wrote (sync.FreshnessKey), null before one.
	Freshness *sync.Freshness `json:"freshness"`
}

// runStatus shows what a mirror holds.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		s3f     cliconfig.S3Flags
		grace   time.Duration
		maxAge  time.Duration
		jsonOut bool
	)
	fs := newFlagSet("status", statusUsage, stdout)
	fs.BoolVar(&jsonOut, "json", false, "print the status as JSON (failures included)")
	fs.Var(units.NewDuration(&grace, sync.DefaultGCGrace), "gc-grace", "the grace period sync runs with, to say when waiting objects are due (negative: never)")
	fs.Var(units.NewDuration(&maxAge, 0), "max-age", "exit 1 when the last successful run is older than this (as 26h), or the target lacks files its metadata promises: for monitors (default: no age check)")
	s3f.AddFlags(fs)
	hideUploadFlags(fs)
	mirror := addOneTargetFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	dst, err := openOneTarget(ctx, fs, &s3f, "status", *mirror, true, nil)
	if err != nil {
		return statusFailed(ctx, stdout, jsonOut, "", err)
	}
	rep, err := mirrorStatus(ctx, dst.Store, grace)
	if err != nil {
		return statusFailed(ctx, stdout, jsonOut, dst.Place.Name, err)
	}
	err = rep.judge(maxAge, time.Now())
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if eerr := enc.Encode(rep); eerr != nil {
			return eerr
		}
	} else {
		printStatus(stdout, rep)
	}
	return err
}

// statusFailed prints, with --json, the failure as a status report (as jsonFailed does for the
// other commands, with the target), and returns err.
func statusFailed(ctx context.Context, stdout io.Writer, jsonOut bool, target string, err error) error {
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			OK       bool   `json:"ok"`
			Error    string `json:"error"`
			ExitCode int    `json:"exit_code"`
			Target   string `json:"target"`
		}{false, withHint(err), exitCode(ctx, err), target})
	}
	return err
}

// judge says whether the status is worth an alert: files the metadata promises missing, or a
// last success older than maxAge (when not 0); it sets OK and Error, and returns the error
// only with maxAge (a monitor's check: exit 1).
func (r *statusReport) judge(maxAge time.Duration, now time.Time) error {
	var problems []string
	if !r.Consistent {
		problems = append(problems, fmt.Sprintf("%d files the published metadata promises are missing or of another size (run sync to bring them back, verify for details)", len(r.Missing)))
	}
	if maxAge > 0 {
		switch {
		case r.LastSuccess == nil:
			problems = append(problems, "no run has succeeded yet (--max-age "+units.FormatDuration(maxAge)+")")
		case now.Sub(*r.LastSuccess) > maxAge:
			problems = append(problems, fmt.Sprintf("the last successful run was %s ago, more than --max-age %s", units.FormatDuration(now.Sub(*r.LastSuccess).Round(time.Second)), units.FormatDuration(maxAge)))
		}
	}
	r.OK = len(problems) == 0
	if r.OK {
		return nil
	}
	r.Error = r.Target + ": " + strings.Join(problems, "; ")
	if maxAge <= 0 {
		return nil // shown, not judged: --max-age makes status a monitor's check
	}
	return errors.New(r.Error)
}

// mirrorStatus reads the mirror's state, the modification times of its metadata and state, and
// its lock, without taking the lock or writing anything.
func mirrorStatus(ctx context.Context, dst store.Target, grace time.Duration) (*statusReport, error) {
	target := store.Describe(dst)
	lock, lockErr := readLease(ctx, dst)
	info, err := dst.Stat(ctx, sync.StateKey)
	if errors.Is(err, store.ErrNotExist) {
		if lockErr == nil && lock != nil && !lock.Released {
			// A first sync in progress: no record yet, the lock held.
			return &statusReport{OK: true, Target: target, FirstSync: true, Products: []statusProduct{}, Missing: []string{},
				Consistent: true, Kept: []statusKept{}, Pending: []statusPending{}, GCGrace: units.FormatDuration(grace),
				Lock: &statusLock{Host: lock.Host, PID: lock.PID, Started: lock.Started, Expires: lock.Expires}}, nil
		}
		return nil, noMirror(ctx, dst, target)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %s%w", target, sync.StateKey, storageTrouble(err), err)
	}
	if lockErr != nil {
		return nil, fmt.Errorf("%s: reading the lock: %s%w", target, storageTrouble(lockErr), lockErr)
	}
	st, err := sync.LoadState(ctx, dst)
	if err != nil {
		return nil, err
	}
	rep := &statusReport{OK: true, Target: target, Totals: totalsOf(st.Held), Products: productsOf(st.Held), Pending: []statusPending{},
		Kept: []statusKept{}, Missing: []string{}, GCGrace: units.FormatDuration(grace), Mode: st.RecordedMode()}
	written := info.ModTime.UTC()
	rep.StateWritten = &written
	rep.noteLock(lock)
	listed := map[string]store.Info{}
	if err := dst.List(ctx, "", func(i store.Info) error { listed[i.Key] = i; return nil }); err != nil {
		return nil, fmt.Errorf("%s: listing: %s%w", rep.Target, storageTrouble(err), err)
	}
	rep.notePublished(st, listed)
	rep.noteListing(st, listed)
	rep.noteWaiting(st, grace)
	// What a deletion frees there.
	if vr, ok := store.As[store.VersioningReader](dst); ok {
		if v, err := vr.Versioning(ctx); err == nil {
			rep.Versioning = &v
		}
	}
	if rep.Freshness, err = sync.ReadFreshness(ctx, dst); err != nil {
		return nil, err
	}
	return rep, nil
}

// productsOf is what held holds per product, versions in order.
func productsOf(held sync.Held) []statusProduct {
	byProduct := map[[2]string]*statusProduct{}
	for vk, hv := range held {
		k := [2]string{vk.ContentID, vk.Product}
		p := byProduct[k]
		if p == nil {
			p = &statusProduct{ContentID: vk.ContentID, Product: vk.Product}
			byProduct[k] = p
		}
		t := totalsOf(sync.Held{vk: hv})
		p.Versions = append(p.Versions, statusVersion{Version: vk.Version, Items: t.Items, Files: t.Files, Bytes: t.Bytes})
	}
	out := []statusProduct{}
	for _, p := range byProduct {
		sort.Slice(p.Versions, func(i, j int) bool { return p.Versions[i].Version < p.Versions[j].Version })
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.ContentID != b.ContentID {
			return a.ContentID < b.ContentID
		}
		return a.Product < b.Product
	})
	return out
}

// notePublished notes when the published catalogue last changed, from the target's listing.
func (rep *statusReport) notePublished(st *sync.State, listed map[string]store.Info) {
	rep.MetadataFiles = len(st.Published)
	for key := range st.Published {
		mi, ok := listed[key]
		if !ok {
			continue // missing metadata is noteListing's (and verify's) business
		}
		if rep.LastPublished == nil || mi.ModTime.After(*rep.LastPublished) {
			t := mi.ModTime.UTC()
			rep.LastPublished = &t
		}
	}
}

// noteLock notes a run in progress, and the last success.
func (rep *statusReport) noteLock(lock *lease) {
	if lock == nil {
		return
	}
	if lock.LastSuccess != nil {
		t := lock.LastSuccess.UTC()
		rep.LastSuccess = &t
	}
	switch {
	case lock.unreadable:
		rep.Lock = &statusLock{}
	case lock.Released:
		// The lease object stays after a run, marked released: no run holds the target.
	default:
		rep.Lock = &statusLock{Host: lock.Host, PID: lock.PID, Started: lock.Started, Expires: lock.Expires}
	}
}

// noteListing notes from the target's listing what the metadata promises and the target does
// not hold, and the content files the record does not name.
func (rep *statusReport) noteListing(st *sync.State, listed map[string]store.Info) {
	for _, hv := range st.Held {
		for _, it := range hv {
			if i, ok := listed[it.Path]; it.Path != "" && (!ok || i.Size != it.Size) {
				rep.Missing = append(rep.Missing, it.Path)
			}
		}
	}
	for key, p := range st.Published {
		if i, ok := listed[key]; !ok || i.Size != p.Size {
			rep.Missing = append(rep.Missing, key)
		}
	}
	sort.Strings(rep.Missing)
	rep.Missing = slices.Compact(rep.Missing)
	rep.Consistent = len(rep.Missing) == 0
	for key, i := range listed {
		_, rec := st.Objects[key]
		_, pub := st.Published[key]
		_, held := slices.BinarySearch(rep.Missing, key) // promised, of another size: counted there
		if rec || pub || held || strings.HasPrefix(key, ".ssmirror/") || strings.HasPrefix(key, "streams/v1/") {
			continue
		}
		rep.Unrecorded++
		rep.UnrecordedBytes += i.Size
	}
}

// noteWaiting notes what an interrupted run kept for the next one, and what waits for deletion.
func (rep *statusReport) noteWaiting(st *sync.State, grace time.Duration) {
	for key, since := range st.Kept {
		if _, waits := st.Unreferenced[key]; !waits {
			continue
		}
		rep.Kept = append(rep.Kept, statusKept{Path: key, Size: st.Objects[key].Size, Since: since.UTC()})
		rep.KeptBytes += st.Objects[key].Size
	}
	sort.Slice(rep.Kept, func(i, j int) bool { return rep.Kept[i].Path < rep.Kept[j].Path })
	for key, since := range st.Unreferenced {
		if _, kept := st.Kept[key]; kept {
			continue
		}
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
	if r.FirstSync {
		fmt.Fprintf(w, "first sync in progress: lock held by host %s, pid %d, since %s, lease until %s (nothing published yet)\n", r.Lock.Host, r.Lock.PID,
			r.Lock.Started.UTC().Format(time.RFC3339), r.Lock.Expires.UTC().Format(time.RFC3339))
		return
	}
	mode := "unknown (nothing published yet)"
	if r.Mode != nil {
		mode = r.Mode.String()
	}
	fmt.Fprintf(w, "mode: %s\n", mode)
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
	if r.Consistent {
		fmt.Fprintln(w, "consistent: the target holds every file the published metadata promises")
	} else {
		fmt.Fprintf(w, "INCONSISTENT: %d files the published metadata promises are missing or of another size:\n", len(r.Missing))
		for i, p := range r.Missing {
			if i == 10 {
				fmt.Fprintf(w, "  and %d more (ssmirror verify lists them all)\n", len(r.Missing)-10)
				break
			}
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	if r.Unrecorded > 0 {
		fmt.Fprintf(w, "not recorded: %d files (%s) the record does not name: an interrupted run's, which the next run checks and adopts, or files that are not the mirror's\n", r.Unrecorded, humanBytes(r.UnrecordedBytes))
	}
	if len(r.Kept) > 0 {
		fmt.Fprintf(w, "kept for the next run: %d files (%s) an interrupted or failed run fetched; the next run publishes them without fetching them again\n", len(r.Kept), humanBytes(r.KeptBytes))
	}
	if v := r.Versioning; v != nil && v.KeepsDeleted() {
		fmt.Fprintf(w, "%s: garbage collection only adds delete markers there and frees nothing, unless sync and gc run with --gc-purge-versions (deleting the noncurrent versions ssmirror wrote) or a lifecycle rule expires noncurrent versions\n", versioningWords(*v))
	}
	printFreshness(w, r.Freshness)
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

// lease is the target's lock object as status reads it.
type lease struct {
	sync.Lease
	unreadable bool
}

// readLease reads the target's lock object: nil when there is none.
func readLease(ctx context.Context, dst store.Target) (*lease, error) {
	data, err := store.ReadAll(ctx, dst, sync.LockKey, 1<<16)
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l lease
	if json.Unmarshal(data, &l.Lease) != nil {
		l.unreadable = true
	}
	return &l, nil
}

// noMirror says why a target without a record is not shown: a bucket that is missing,
// credentials refused or an endpoint out of reach (as the listing finds), objects that are no
// ssmirror mirror's, or nothing there yet.
func noMirror(ctx context.Context, dst store.Target, target string) error {
	found := false
	errStop := errors.New("stop")
	err := dst.List(ctx, "", func(store.Info) error { found = true; return errStop })
	switch {
	case err != nil && !errors.Is(err, errStop):
		return fmt.Errorf("%s: %s%w", target, storageTrouble(err), err)
	case found:
		return fmt.Errorf("%s holds objects but no ssmirror record (%s): it is not an ssmirror mirror, or its record was deleted", target, sync.StateKey)
	}
	return fmt.Errorf("%s holds no ssmirror mirror (no %s): nothing was mirrored there yet, or the target is mistyped", target, sync.StateKey)
}

// storageTrouble is what to put before a storage error an operator can act on (the error itself
// is wrapped after it, so exit codes and hints still see it): a missing bucket, refused
// credentials, an endpoint out of reach; "" for anything else. It names the trouble; what to do
// about an S3 answer is the error's hint (s3Mistake), said once, after the message.
func storageTrouble(err error) string {
	if what, _ := s3Trouble(err); what != "" {
		return what + ": "
	}
	// Refusals s3Trouble does not take for a configuration mistake (exit 2) are still said as
	// such here.
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "InvalidToken" {
		return "access denied: "
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusForbidden || re.HTTPStatusCode() == http.StatusUnauthorized) {
		return "access denied: "
	}
	if errors.Is(err, fs.ErrPermission) {
		return "permission denied: "
	}
	var op *net.OpError
	var dns *net.DNSError
	if errors.As(err, &op) || errors.As(err, &dns) {
		return "the storage endpoint cannot be reached (is it up? is --s3-endpoint or the target's endpoint right?): "
	}
	return ""
}
