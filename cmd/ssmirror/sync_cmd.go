package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/internal/cdn"
	"github.com/ssmirror/ssmirror/internal/publiccheck"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

const syncUsage = `Usage: ssmirror [sync] [flags] SOURCE TARGET [FILTER...]
       ssmirror [sync] [flags] --target TARGET [--target TARGET...] SOURCE [TARGET] [FILTER...]

Mirror the SimpleStreams stream at SOURCE into TARGET. Content is fetched once per path, in
parallel, and refused unless its size and sha256 match the catalogue; the metadata is published
only after everything it lists as held is in place (products files, then the index); objects
nothing references any more are deleted by a later run once --gc-grace has passed.

SOURCE  https://images.maas.io/ephemeral-v3/stable/   an HTTP(S) mirror (https://user:password@host/…
                                                      sends basic auth; never shown in any output)
        /srv/upstream  or  file:///srv/upstream         a directory
        s3://bucket/prefix                              a bucket (mirror of a mirror)
        Ending in streams/v1/NAME.sjson or NAME.json picks the start file; otherwise
        streams/v1/index.sjson (signed: give --keyring, or --no-verify), or, at a source
        without one (LXD, Incus), streams/v1/index.json.
TARGET  /srv/mirror  or  file:///srv/mirror  or  s3://bucket/prefix
FILTER  key=value  key!=value  key~regex  key!~regex  (all must hold; regex is unanchored).
        Keys are item attributes after inheritance: arch, release, os, subarch, ftype,
        product_name, version_name, item_name, path, ...

Publishing modes:
  verbatim (default)  upstream metadata published byte for byte (clients keep the upstream
                      keyring); every selected item is present before metadata lists it.
  curated             --signing-key: the catalogue is rewritten to list exactly what the mirror
                      holds and signed with your key (.sjson and .json.gpg); give clients the
                      public keyring from 'ssmirror keygen'.

Several targets (--target, repeatable; several target lines in a config file; $SSMIRROR_TARGET
with several, separated by commas or blanks): upstream is read once and each file fetched once
for all of them, streamed to every target that needs it; each target is locked, published and
collected on its own, as a run of its own, and the transfer starts once every target has
planned. A target that fails (unreachable, no such bucket, locked, holding the others back
beyond its share of --fan-out-buffer) publishes nothing and the others go on; the run exits 1
naming it. Memory is one --fan-out-buffer and one --upload-buffers for the run, whatever the
number of targets.
--json adds targets (one summary per target) and upstream_bytes.

Runs with different filters into one target accumulate (the MAAS recipe runs twice); --prune
drops what the current selection no longer covers.

Behind a CDN or proxy (a bucket target, or --public-url, or --cloudfront-distribution): a
--gc-grace shorter than the metadata's max-age (--metadata-cache-control) plus --client-cache
(2h) is refused (exit 2) unless --accept-short-grace; --gc-grace=0 is allowed with a warning.
Each publish writes .ssmirror/freshness.json after the index. With --public-url, the run then
reads the new index and freshness record back through that URL (up to --public-wait) and checks
every file held is served; what is still stale or missing is a warning (--public-strict: exit 1).

Configuration: every flag may also come from the environment as SSMIRROR_<FLAG> (--s3-endpoint:
SSMIRROR_S3_ENDPOINT) or from a config file (--config FILE or $SSMIRROR_CONFIG) of "key = value"
lines, # comments, keys source and target, and [filter] sections of one filter per line.
A flag wins over the environment, which wins over the file. With source and target configured,
run 'ssmirror sync --config FILE'. A file of [mirror NAME] sections (each its own source, target,
[filter]s and settings; shared settings at the top) runs each mirror in turn (--parallel-mirrors
N at once, --only-mirror NAME to pick); the exit status is the worst of theirs. Secrets never go in the file: the signing passphrase comes
from $SSMIRROR_SIGNING_PASSPHRASE or --signing-passphrase-file. See docs/operator-guide.md.

Examples:
  # The MAAS documentation's recipe, into a directory:
  ssmirror --keyring=/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg \
      https://images.maas.io/ephemeral-v3/stable/ /srv/maas-images \
      'arch=amd64' 'release~(jammy|noble)' --max=1 --progress
  ssmirror --keyring=/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg \
      https://images.maas.io/ephemeral-v3/stable/ /srv/maas-images \
      'os~(grub*|pxelinux)' --max=1 --progress

  # Into MinIO, curated and signed with your own key:
  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... ssmirror --s3-endpoint http://minio:9000 \
      --keyring=/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg --signing-key mirror.asc \
      https://images.maas.io/ephemeral-v3/stable/ s3://maas-images/stable 'arch=amd64' --max=1

  # What would change, without changing anything:
  ssmirror --dry-run --no-verify https://images.maas.io/ephemeral-v3/stable/ /srv/maas-images 'release=noble'
`

// syncFlags are the sync settings both binaries share (cliconfig.Sync) and the command's own
// flags: output, logs, metrics.
type syncFlags struct {
	cliconfig.Sync
	compat        compatFlags
	progress      bool
	verbose       int
	jsonOut       bool
	logFormat     string
	progressEvery time.Duration
	metrics       metricsFlags
}

// newSyncFlagSet makes the sync command's flag set, filling f.
func newSyncFlagSet(f *syncFlags, stdout io.Writer) *pflag.FlagSet {
	fs := newFlagSet("sync", syncUsage, stdout)
	f.Sync.AddFlags(fs)
	f.compat.addFlags(fs)
	fs.BoolVar(&f.progress, "progress", false, "show progress: on a terminal a bar for the run and one per file in flight; otherwise a line every --progress-interval")
	fs.Var(units.NewDuration(&f.progressEvery, 10*time.Second), "progress-interval", "how often --progress prints when not on a terminal")
	fs.CountVarP(&f.verbose, "verbose", "v", "say more (-v: each step, -vv: each file)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json (json: every line on stdout and stderr is one JSON object, the summary and the final error included)")
	fs.BoolVar(&f.jsonOut, "json", false, "print a JSON summary of the run on stdout, for every run: dry runs (with the items added and removed) and failed ones (ok false, error) included")
	f.metrics.addFlags(fs)
	return fs
}

func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runOneSync(ctx, args, stdout, stderr, "")
}

// runOneSync runs one sync: the one the command line and configuration describe, or, with
// mirror set, the config file's [mirror] section of that name. Without mirror, a config file of
// [mirror] sections runs them all (runMirrors).
func runOneSync(ctx context.Context, args []string, stdout, stderr io.Writer, mirror string) (err error) {
	var f syncFlags
	fs := newSyncFlagSet(&f, stdout)
	// Machine output on every path: a --json summary and, with --log-format json, JSON lines
	// only, whatever the run met (registered first, so it sees the final error).
	jsonLog := wantsJSONLog(args, os.LookupEnv)
	var rep *sync.Report
	var fr *sync.FanOutReport                // a fan-out run's (several targets)
	var public []*publiccheck.ReadBackResult // per target: the read-back through --public-url
	var source, target string
	var targets []string
	summaryDone := false
	began := time.Now()
	var flushes []func()
	defer func() {
		if err == nil || errors.Is(err, pflag.ErrHelp) {
			for _, fl := range flushes {
				fl()
			}
			return
		}
		if f.jsonOut && !summaryDone {
			writeSummary(stdout, summarize(source, targets, f.DryRun, rep, fr, time.Since(began), err), jsonLog)
		}
		for _, fl := range flushes {
			fl()
		}
		if jsonLog {
			err = jsonLogError{err}
		}
	}()
	if err := parse(fs, args); err != nil {
		return err
	}
	if mirror == "" {
		names, err := cliconfig.Mirrors(fs, os.LookupEnv, isSettingKey)
		if err != nil {
			return err
		}
		if len(names) > 0 && len(f.Targets) > 0 {
			return usagef("--%s adds a target to one run; with [mirror NAME] sections, give each mirror its targets in its section (several target lines: a fan-out)", cliconfig.TargetFlag)
		}
		if len(names) > 0 {
			summaryDone = true // each mirror reports its own
			return runMirrors(ctx, args, names, stdout, stderr)
		}
	}
	conf, err := cliconfig.ConfigureMirror(fs, os.LookupEnv, isSettingKey, mirror)
	if err != nil {
		return err
	}
	jsonLog = f.logFormat == "json"
	if jsonLog {
		jo, je := newJSONLines(stdout), newJSONLines(stderr)
		if f, ok := stderr.(*os.File); ok && f == os.Stderr {
			// The process's own stderr: what the AWS SDK writes there (its warnings) becomes
			// JSON lines too.
			if restore, rerr := redirectStderr(je); rerr == nil {
				flushes = append(flushes, restore)
			}
		}
		stdout, stderr = jo, je
		flushes = append(flushes, jo.Flush, je.Flush)
	}
	if mirror == "" { // several mirrors: runMirrors warns once
		warnAll(stderr, unknownEnv(os.Environ()))
	}
	source, targets, groups, err := syncArgs(fs.Args(), conf, f.Targets)
	if err != nil {
		return err
	}
	target = targets[0]
	if len(targets) > 1 && f.CFDistribution != "" {
		return usagef("--cloudfront-distribution invalidates one target's paths: run a target behind CloudFront on its own, not in a run with several targets")
	}
	if err := f.Sync.Check(fs); err != nil {
		return err
	}
	if err := checkGrace(fs, &f.Sync, targets, stderr); err != nil {
		return err
	}
	logOut, closeLog, err := f.compat.openLog(stderr)
	if err != nil {
		return err
	}
	var log *slog.Logger // set once the flags are checked; warnings before that are plain text
	defer func() { closeLog(log, &err) }()
	if err := f.metrics.check(); err != nil {
		return err
	}
	// A CloudFront invalidation or a metrics export that fails after a good publish is a warning:
	// the mirror is published and consistent, so the run exits 0; the metrics record it
	// (ssmirror_last_run_warnings). After a failed run they go with its error.
	var cdnErr error
	defer func() {
		if cdnErr != nil && err != nil {
			err = fmt.Errorf("%w (and %v)", err, cdnErr)
		}
	}()
	// From here on every failure is a failed run, reported in the metrics too.
	if f.metrics.enabled() && !f.DryRun {
		defer func() {
			// Report even an interrupted run, within a bounded time.
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			merr := f.metrics.export(mctx, withPublic(runResults(targets, mirror, rep, fr, time.Since(began), err, cdnErr), public)...)
			switch {
			case merr != nil && err == nil:
				warnRun(log, stderr, "mirrored, but the metrics export failed", merr)
			case merr != nil:
				// The run's own error is the one to report; the metrics failure goes with it.
				err = fmt.Errorf("%w (and %v)", err, merr)
			}
		}()
	}
	srcLoc, err := cliconfig.ParseLocation(source)
	if err != nil {
		return err
	}
	dstLocs := make([]cliconfig.Location, len(targets))
	for i, t := range targets {
		if dstLocs[i], err = cliconfig.ParseLocation(t); err != nil {
			return err
		}
		for j := range i {
			if sameLocation(dstLocs[j], dstLocs[i]) {
				return usagef("target %s is given twice", httpstore.StripUserInfo(t))
			}
		}
	}
	dstLoc := dstLocs[0]
	keyring, err := f.Verify.Load()
	if err != nil {
		return err
	}
	if jsonLog && logOut != stderr {
		jl := newJSONLines(logOut) // the --log-file
		logOut = jl
		flushes = append(flushes, jl.Flush)
	}
	log, err = newLogger(logOut, f.verbose, f.logFormat)
	if err != nil {
		return err
	}
	log.Info("start", "version", version(), "source", httpstore.StripUserInfo(source), "target", strings.Join(stripAll(targets), ", "),
		"filters", groupStrings(groups), "dry_run", f.DryRun)
	signer, err := f.LoadSigner(os.LookupEnv)
	if err != nil {
		return err
	}
	client, err := f.TLS.HTTPClient(stderr)
	if err != nil {
		return err
	}
	client = withRetryLog(client, log)
	f.S3.RetryLog = log
	warnUnprotected(stderr, srcLoc, keyring != nil)
	src, err := cliconfig.OpenSource(ctx, srcLoc, &f.S3, f.Mirrors, client, userAgent())
	if err != nil {
		return err
	}
	src = cliconfig.LimitSource(src, f.Bwlimit)
	dsts := make([]store.Target, len(dstLocs))
	for i, loc := range dstLocs {
		if dsts[i], err = cliconfig.OpenTarget(ctx, loc, &f.S3); err != nil {
			return err
		}
	}
	dst := dsts[0]
	var cf *cloudfront.Client
	if f.CFDistribution != "" && !f.DryRun {
		if cf, err = cdn.NewClient(ctx, f.S3.Profile); err != nil {
			return err
		}
	}
	progress := &sync.Progress{}
	opts := f.Options(srcLoc, groups, keyring, signer)
	opts.OnTransfer = limitTransferMemory // the command owns its process
	opts.Progress = progress
	opts.Log = log
	opts.Freshness = freshnessInfo(source)
	var stopProgress func()
	switch {
	case f.progress && !f.DryRun && jsonLog:
		stopProgress = progressJSON(progress, stderr, f.progressEvery)
	case f.progress && !f.DryRun:
		stopProgress = showProgress(progress, stderr, f.progressEvery)
	}
	if len(dsts) > 1 {
		fr, err = sync.RunTargets(ctx, src, dsts, opts)
		err = summarizeFanOutInterrupt(ctx, stripAll(targets), fr, err)
		if stopProgress != nil {
			stopProgress()
		}
		var publicErr error
		public, publicErr = readBackTargets(ctx, &f.Sync, dsts, stripAll(targets), fr, client, log, stderr)
		err = fanOutOutput(stdout, stderr, &f, source, targets, fr, time.Since(began), err, jsonLog, &summaryDone, public)
		return cmp.Or(err, publicErr)
	}
	rep, err = sync.Run(ctx, src, dst, opts)
	err = summarizeInterrupt(ctx, rep, err)
	if stopProgress != nil {
		stopProgress()
	}
	var invalidation string
	if err == nil && cf != nil && len(rep.MetadataWritten) > 0 {
		prefix := f.CFPathPrefix
		if prefix == "" {
			prefix = cdn.DefaultPathPrefix(dstLoc.Prefix)
		}
		paths := cdn.Paths(prefix, rep.MetadataWritten)
		id, ierr := cdn.Invalidate(ctx, cf, f.CFDistribution, paths)
		if ierr != nil {
			cdnErr = ierr
			warnRun(log, stderr, "mirrored, but the CDN invalidation failed", ierr)
		} else {
			invalidation = id
			log.Info("CloudFront invalidation created", "distribution", f.CFDistribution, "id", id, "paths", paths)
		}
	}
	// After the publish and the invalidation: what the public URL serves.
	var publicErr error
	if err == nil && !f.DryRun && f.Public.URL(0) != "" {
		res, rerr := readBack(ctx, &f.Sync, f.Public.URL(0), dst, rep, client)
		public = []*publiccheck.ReadBackResult{res}
		publicErr = publicOutcome(res, rerr, f.Public.Strict, httpstore.StripUserInfo(target), log, stderr)
	}
	took := time.Since(began)
	hasPlan := rep != nil && rep.Plan != nil
	switch {
	case f.jsonOut || (jsonLog && hasPlan):
		sum := cliconfig.Summarize(httpstore.StripUserInfo(source), httpstore.StripUserInfo(target), f.DryRun, rep, took, cmp.Or(err, publicErr))
		sum.CloudFrontInvalidation = invalidation
		if len(public) > 0 {
			sum.PublicURL = public[0]
		}
		writeSummary(stdout, sum, jsonLog)
		summaryDone = true
	case hasPlan && f.DryRun:
		printPlan(stdout, stderr, rep)
	case hasPlan:
		printSummary(stdout, httpstore.StripUserInfo(source), describe(dst), rep, took, err)
		if len(public) > 0 {
			printPublic(stdout, public[0])
		}
	}
	return cmp.Or(err, publicErr)
}

// sameLocation reports whether two targets are one place written two ways (a trailing slash,
// a dot segment): their runs would meet at its lock.
func sameLocation(a, b cliconfig.Location) bool {
	if a.Kind != b.Kind {
		return false
	}
	if a.Kind == "s3" {
		return a.Bucket == b.Bucket && strings.Trim(a.Prefix, "/") == strings.Trim(b.Prefix, "/")
	}
	return filepath.Clean(a.Root) == filepath.Clean(b.Root)
}

// summarize is the JSON summary of the run: a single target's, or a fan-out run's.
func summarize(source string, targets []string, dryRun bool, rep *sync.Report, fr *sync.FanOutReport, took time.Duration, err error) cliconfig.Summary {
	if len(targets) > 1 {
		return cliconfig.SummarizeTargets(httpstore.StripUserInfo(source), stripAll(targets), dryRun, fr, took, err)
	}
	target := ""
	if len(targets) == 1 {
		target = httpstore.StripUserInfo(targets[0])
	}
	return cliconfig.Summarize(httpstore.StripUserInfo(source), target, dryRun, rep, took, err)
}

// runResults are what the metrics describe: the one target's run, or each target's of a fan-out
// run (a target whose run did not report fails with the run's error).
func runResults(targets []string, mirror string, rep *sync.Report, fr *sync.FanOutReport, took time.Duration, err, cdnErr error) []runResult {
	end := time.Now()
	if len(targets) <= 1 || fr == nil {
		target := ""
		if len(targets) > 0 {
			target = httpstore.StripUserInfo(targets[0])
		}
		if len(targets) > 1 {
			target = strings.Join(stripAll(targets), ",")
		}
		return []runResult{{target: target, mirror: mirror, report: rep, duration: took, err: err, cdnErr: cdnErr, end: end}}
	}
	out := make([]runResult, len(targets))
	for i, t := range targets {
		r := runResult{target: httpstore.StripUserInfo(t), mirror: mirror, duration: took, end: end, err: err}
		if i < len(fr.Targets) {
			r.report, r.err = fr.Targets[i].Report, fr.Targets[i].Err
		}
		out[i] = r
	}
	return out
}

func stripAll(locations []string) []string {
	out := make([]string, len(locations))
	for i, l := range locations {
		out[i] = httpstore.StripUserInfo(l)
	}
	return out
}

// fanOutOutput prints what a fan-out run did: the JSON summary, or per target the dry run's
// plan or the run's summary, then the upstream bytes read; and returns the run's error.
func fanOutOutput(stdout, stderr io.Writer, f *syncFlags, source string, targets []string, fr *sync.FanOutReport, took time.Duration, err error, jsonLog bool, summaryDone *bool, public []*publiccheck.ReadBackResult) error {
	if f.jsonOut || jsonLog {
		sum := summarize(source, targets, f.DryRun, nil, fr, took, err)
		for i := range sum.Targets {
			if i < len(public) {
				sum.Targets[i].PublicURL = public[i]
			}
		}
		writeSummary(stdout, sum, jsonLog)
		*summaryDone = true
		return err
	}
	if fr == nil {
		return err
	}
	for i, t := range fr.Targets {
		rep := t.Report
		name := httpstore.StripUserInfo(targets[i])
		switch {
		case rep == nil || rep.Plan == nil:
			fmt.Fprintf(stdout, "FAILED, nothing published: %s -> %s: %v\n", httpstore.StripUserInfo(source), name, t.Err)
		case f.DryRun:
			fmt.Fprintf(stdout, "# %s\n", name)
			printPlan(stdout, stderr, rep)
		default:
			var own time.Duration // the target's run: its stages
			for _, st := range rep.Stages {
				own += st.Duration
			}
			printSummary(stdout, httpstore.StripUserInfo(source), name, rep, own, t.Err)
			if i < len(public) {
				printPublic(stdout, public[i])
			}
			if rep.CopiedFrom > 0 {
				fmt.Fprintf(stdout, "  copied server-side from another target: %d files (%s)\n", rep.CopiedFrom, humanBytes(rep.CopiedFromBytes))
			}
		}
	}
	if !f.DryRun {
		fmt.Fprintf(stdout, "upstream: %s of content read once for %d targets\n", humanBytes(fr.UpstreamBytes), len(targets))
	}
	return err
}

// groupStrings are the filter groups as written.
func groupStrings(groups []streams.Filters) [][]string {
	out := [][]string{}
	for _, g := range groups {
		out = append(out, g.Strings())
	}
	return out
}

// syncArgs resolves SOURCE, the targets and the filter groups. With no arguments they all come
// from the configuration (environment, then config file); with SOURCE and TARGET as arguments,
// the filters come from the arguments when there are any, else from the configuration. extra
// (--target) adds targets to TARGET, wherever it comes from; with extra, the positional TARGET
// may be left out (SOURCE [FILTER...]).
func syncArgs(pos []string, conf *settings, extra []string) (source string, targets []string, groups []streams.Filters, err error) {
	configured := conf.Targets
	if len(configured) == 0 && conf.Target != "" {
		configured = []string{conf.Target}
	}
	switch {
	case len(pos) == 0:
		if conf.Source == "" || len(configured)+len(extra) == 0 {
			return "", nil, nil, usagef("sync needs SOURCE and TARGET: as arguments, as $SSMIRROR_SOURCE and $SSMIRROR_TARGET, or as source and target in the config file (see ssmirror help sync)")
		}
		return conf.Source, append(slices.Clone(configured), extra...), conf.Groups, nil
	case len(pos) == 1 && len(extra) == 0:
		return "", nil, nil, usagef("sync needs SOURCE and TARGET (see ssmirror help sync)")
	}
	if cliconfig.LooksLikeFilter(pos[0]) {
		return "", nil, nil, usagef("SOURCE %q looks like a filter: the command line is SOURCE TARGET [FILTER...] (a directory of that name is written ./%s)", pos[0], pos[0])
	}
	rest := pos[1:]
	if len(extra) == 0 || (len(rest) > 0 && !cliconfig.LooksLikeFilter(rest[0])) {
		if cliconfig.LooksLikeFilter(rest[0]) {
			return "", nil, nil, usagef("TARGET %q looks like a filter: the command line is SOURCE TARGET [FILTER...] (a directory of that name is written ./%s)", rest[0], rest[0])
		}
		targets, rest = []string{rest[0]}, rest[1:]
	}
	targets = append(targets, extra...)
	if len(rest) == 0 {
		return pos[0], targets, conf.Groups, nil
	}
	filters, err := cliconfig.ParseFilterArgs(rest)
	if err != nil {
		return "", nil, nil, usageError{Err: err}
	}
	return pos[0], targets, []streams.Filters{filters}, nil
}

// printPlan prints sstream-mirror's dry-run output on w: a line per item added or removed, "+"
// or "-", product, version, item, path and size in whole MiB ("+ P V I PATH 8 Mb"), then the
// net change ("512 Mb change"), so that scripts written for sstream-mirror read it unchanged.
// The exact totals (files present to be read and checked apart from those to fetch) and the
// recorded files the target no longer holds as recorded, which the run would bring back, go to
// the summary writer (stderr).
func printPlan(w, summary io.Writer, rep *sync.Report) {
	const mib = 1 << 20
	p := rep.Plan
	var addBytes, rmBytes int64
	for _, c := range p.Added {
		fmt.Fprintf(w, "+ %s %s %s %s %d Mb\n", c.Product, c.Version, c.Item, c.Path, c.Size/mib)
		addBytes += c.Size
	}
	for _, c := range p.Removed {
		fmt.Fprintf(w, "- %s %s %s %s %d Mb\n", c.Product, c.Version, c.Item, c.Path, c.Size/mib)
		rmBytes += c.Size
	}
	fmt.Fprintf(w, "%d Mb change\n", (addBytes-rmBytes)/mib)
	checks := 0
	for _, f := range p.Fetch {
		if f.Check {
			checks++
		}
	}
	fmt.Fprintf(summary, "ssmirror: dry run, nothing changed: %d items to add (%s), %d to remove (%s), %d kept; %d files to fetch (%s)",
		len(p.Added), humanBytes(addBytes), len(p.Removed), humanBytes(rmBytes), p.Kept,
		len(p.Fetch)-checks, humanBytes(p.FetchBytes()))
	if checks > 0 {
		fmt.Fprintf(summary, ", %d present to read and check (fetched if they differ)", checks)
	}
	fmt.Fprintln(summary)
	for _, key := range rep.Drifted {
		fmt.Fprintf(summary, "ssmirror: drift: %s is missing or was replaced in the target since the mirror wrote it\n", key)
	}
}

func printSummary(w io.Writer, src, dst string, rep *sync.Report, took time.Duration, err error) {
	status := "mirrored"
	if err != nil {
		status = "FAILED, nothing published:"
	}
	fmt.Fprintf(w, "%s %s -> %s in %s\n", status, src, dst, took.Round(time.Millisecond))
	p := rep.Plan
	fmt.Fprintf(w, "  items: %d added, %d removed, %d kept\n", len(p.Added), len(p.Removed), p.Kept)
	fmt.Fprintf(w, "  files: %d fetched (%s), %d copied in the target (%s), %d already present and verified\n",
		rep.Fetched, humanBytes(rep.FetchedBytes), rep.Copied, humanBytes(rep.CopiedBytes), rep.Adopted)
	if len(rep.Drifted) > 0 {
		fmt.Fprintf(w, "  drift: %d recorded files were missing or replaced in the target (those still listed are brought back)\n", len(rep.Drifted))
	}
	mode := "verbatim (upstream metadata byte for byte)"
	if rep.Curated {
		mode = "curated (rewritten and signed with the signing key)"
	}
	if err == nil {
		fmt.Fprintf(w, "  metadata: %d files written, %s\n", len(rep.MetadataWritten), mode)
		fmt.Fprintf(w, "  deleted: %d, waiting for the grace period: %d\n", len(rep.Deleted), rep.PendingDeletion)
	}
}
