package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/sync"
	"github.com/ssmirror/ssmirror/sync/audit"
)

const verifyUsage = `Usage: ssmirror verify [flags] [TARGET]

Audit a published mirror: read its catalogue (with --keyring, every metadata form must verify),
then check that every item the mirror holds is present with the listed size and sha256. The
sha256 is the one recorded when the object was written (S3 object metadata, a directory's
extended attribute, or the mirror's state); --deep re-reads and hashes every object instead.

One line per problem, then a summary. Exit status 0: no problem (warnings allowed); 1: problems
found, or the target could not be read; 2: bad command line.

TARGET  /srv/mirror  or  file:///srv/mirror  or  s3://bucket/prefix[?profile=NAME&...]
        (ending in streams/v1/NAME.sjson or NAME.json picks the index to start from); may be
        left out when the configuration names one target.

Settings come from flags, $SSMIRROR_* and the config file as for sync (see ssmirror help
status).

Examples:
  ssmirror verify --keyring=/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg /srv/maas-images
  ssmirror verify --keyring=mirror.gpg --deep --json s3://maas-images/stable
`

const gcUsage = `Usage: ssmirror gc [flags] [TARGET]

Run the deferred garbage collection on demand: delete the objects this mirror wrote that nothing
it holds has referenced for longer than --gc-grace. Objects it did not write, and anything its
published metadata lists as held, are never deleted. --dry-run shows what would go and when.
Into a bucket, --gc-grace must outlive the metadata's max-age plus --client-cache, as for sync
(see ssmirror help sync and the operator guide's CDN section).

TARGET  /srv/mirror  or  file:///srv/mirror  or  s3://bucket/prefix[?profile=NAME&...]; may be
        left out when the configuration names one target.

Settings come from flags, $SSMIRROR_* and the config file as for sync (see ssmirror help
status).
`

// runVerify audits a published mirror.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		vf          cliconfig.Verify
		s3f         cliconfig.S3Flags
		deep        bool
		jsonOut     bool
		path        string
		concurrency int
		verbose     int
	)
	fs := newFlagSet("verify", verifyUsage, stdout)
	vf.AddFlags(fs)
	fs.BoolVar(&deep, "deep", false, "re-read and hash every object instead of trusting recorded hashes")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	fs.StringVar(&path, "path", "", "start from this index path instead of streams/v1/index.sjson (or index.json)")
	fs.IntVar(&concurrency, "concurrency", 4, "objects checked at once")
	fs.CountVarP(&verbose, "verbose", "v", "say more")
	s3f.AddFlags(fs)
	hideUploadFlags(fs)
	mirror := addOneTargetFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	var keyring *sign.Keyring
	one, err := openOneTarget(ctx, fs, &s3f, "verify", *mirror, false, func() (err error) {
		keyring, err = vf.Load()
		return err
	})
	if err != nil {
		return jsonFailed(ctx, stdout, jsonOut, err)
	}
	log, err := newLogger(stderr, verbose, "text")
	if err != nil {
		return err
	}
	start := one.Loc.Start
	if path != "" {
		start = path
	}
	rep, err := audit.Verify(ctx, one.Store, audit.VerifyOptions{
		StartPath:   start,
		Keyring:     keyring,
		Deep:        deep,
		Concurrency: concurrency,
		Log:         log,
	})
	if err != nil {
		return jsonFailed(ctx, stdout, jsonOut, err)
	}
	if jsonOut {
		out := struct {
			OK       bool `json:"ok"`
			Failures int  `json:"failures"`
			Warnings int  `json:"warnings"`
			Deep     bool `json:"deep"`
			*audit.VerifyReport
		}{rep.OK(), rep.Failures(), rep.Warnings(), deep, rep}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printVerify(stdout, rep, deep)
	}
	if n := rep.Failures(); n > 0 {
		return fmt.Errorf("verify %s: %d %s", rep.Target, n, plural(n, "problem", "problems"))
	}
	return nil
}

func printVerify(w io.Writer, rep *audit.VerifyReport, deep bool) {
	for _, p := range rep.Problems {
		prefix := ""
		if p.Warning {
			prefix = "warning: "
		}
		name := p.Path
		if name == "" {
			name = rep.StartPath
		}
		if p.Detail != "" {
			fmt.Fprintf(w, "%s%s: %s: %s\n", prefix, name, p.Problem, p.Detail)
		} else {
			fmt.Fprintf(w, "%s%s: %s\n", prefix, name, p.Problem)
		}
	}
	how := "recorded sha256"
	if deep {
		how = "content re-read and hashed"
	}
	sigs := "signatures not checked (no --keyring)"
	if rep.SignaturesChecked {
		sigs = "signatures checked"
	}
	status := "OK"
	if n := rep.Failures(); n > 0 {
		status = fmt.Sprintf("%d %s", n, plural(n, "problem", "problems"))
	}
	if n := rep.Warnings(); n > 0 {
		status += fmt.Sprintf(" (%d %s)", n, plural(n, "warning", "warnings"))
	}
	if !rep.ContentChecked {
		fmt.Fprintf(w, "could not read the catalogue of %s, no content checked: %s\n", rep.Target, status)
		return
	}
	fmt.Fprintf(w, "verified %d items in %d files (%s; %s, %s) of %s: %s\n",
		rep.Items, rep.Files, humanBytes(rep.Bytes), how, sigs, rep.Target, status)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// runGC runs the deferred garbage collection on demand.
func runGC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		s3f     cliconfig.S3Flags
		grace   time.Duration
		dryRun  bool
		jsonOut bool
		verbose int
		lockTTL time.Duration
		purge   bool
		cache   cliconfig.Cache
	)
	fs := newFlagSet("gc", gcUsage, stdout)
	cache.AddFlags(fs)
	fs.Var(units.NewDuration(&grace, sync.DefaultGCGrace), "gc-grace", "delete objects nothing has referenced for this long, as 3d or 12h (0: at once; negative: never)")
	fs.BoolVar(&dryRun, "dry-run", false, "show what would be deleted and when, delete nothing")
	fs.BoolVar(&purge, "gc-purge-versions", false, "on a bucket with versioning or object lock, also delete the noncurrent versions ssmirror itself wrote of what is deleted (otherwise a delete there only adds a delete marker and frees nothing)")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	fs.CountVarP(&verbose, "verbose", "v", "say more (-v: each deletion)")
	fs.Var(units.NewDuration(&lockTTL, sync.DefaultLockTTL), "lock-ttl", "lease of the target's lock, as 10m (see ssmirror help sync)")
	s3f.AddFlags(fs)
	hideUploadFlags(fs)
	mirror := addOneTargetFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	one, err := openOneTarget(ctx, fs, &s3f, "gc", *mirror, true, func() error { return cliconfig.CheckLockTTL(fs, lockTTL) })
	if err != nil {
		return jsonFailed(ctx, stdout, jsonOut, err)
	}
	if !dryRun { // the grace rule of sync: a bucket is served over HTTP, maybe cached
		warn, err := cache.CheckGrace(fs, grace, one.Place.Loc.Kind == "s3")
		if err != nil {
			return err
		}
		if warn != "" && grace != 0 { // gc --gc-grace=0 is a deliberate one-off: no warning
			fmt.Fprintf(stderr, "ssmirror: warning: %s\n", warn)
		}
	}
	log, err := newLogger(stderr, verbose, "text")
	if err != nil {
		return err
	}
	rep, gcErr := sync.GC(ctx, one.Store, sync.GCOptions{Grace: grace, DryRun: dryRun, Log: log, Lock: sync.LockOptions{TTL: lockTTL}, PurgeVersions: purge})
	if rep == nil {
		return jsonFailed(ctx, stdout, jsonOut, gcErr)
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		return gcErr
	}
	deleted := map[string]bool{}
	for _, p := range rep.Deleted {
		deleted[p] = true
	}
	var due int
	for _, c := range rep.Candidates {
		when := "never (negative --gc-grace)"
		switch {
		case c.DueNow:
			when = "due now"
			due++
		case !c.Due.IsZero():
			when = "due at " + c.Due.UTC().Format(time.RFC3339)
		}
		verb := "keep"
		switch {
		case deleted[c.Path]:
			verb = "deleted"
		case dryRun && c.DueNow:
			verb = "would delete"
		}
		fmt.Fprintf(stdout, "%s %s (%s): %s, unreferenced since %s\n", verb, c.Path, humanBytes(c.Size), when, c.Since.UTC().Format(time.RFC3339))
	}
	if dryRun {
		fmt.Fprintf(stdout, "dry run: %d unreferenced, %d due now, %d within the grace period; nothing deleted\n", len(rep.Candidates), due, rep.Pending)
	} else {
		fmt.Fprintf(stdout, "deleted %d%s, waiting for the grace period: %d\n", len(rep.Deleted), freedNote(rep.FreedBytes, rep.VersionsKept, rep.Versioning), rep.Pending)
	}
	return gcErr
}
