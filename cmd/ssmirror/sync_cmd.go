package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/cmd/internal/job"
	"github.com/ssmirror/ssmirror/internal/cdn"
	"github.com/ssmirror/ssmirror/internal/publiccheck"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/sign"
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
        An s3:// location (target or source) may say how it is reached, as go-cloud's s3blob
        URLs do: s3://bucket/prefix?profile=NAME (an AWS shared-config profile: its
        endpoint_url, region, credentials, ca_bundle), ?endpoint=URL, ?region=,
        ?use_path_style=true|false, ?ca_bundle=FILE, ...; otherwise --s3-endpoint, --region,
        --profile, --s3-ca-bundle and --s3-addressing-style apply. A config file's [target]
        section says the same with those keys. Secrets stay in the AWS credentials file.
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
	quiet         bool
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
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "for cron and timers: print nothing when the run succeeds; when it fails, its summary and errors (warnings and retries are not printed: the exit status and --metrics-textfile say how it went)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json (json: every line on stdout and stderr is one JSON object, the summary and the final error included)")
	fs.BoolVar(&f.jsonOut, "json", false, "print a JSON summary of the run on stdout, for every run: dry runs (with the items added and removed) and failed ones (ok false, error) included")
	f.metrics.addFlags(fs)
	return fs
}

// runSync runs the sync the command line and configuration describe or, with a config file of
// [mirror] sections, each of its mirrors (runMirrors).
func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	r := newSyncRun(stdout, stderr, "")
	names, err := r.configure(args)
	if err == nil && len(names) > 0 {
		return runMirrors(ctx, args, names, stdout, stderr)
	}
	return r.complete(ctx, err)
}

// runOneSync runs one sync: the one the command line and configuration describe, or, with
// mirror set, the config file's [mirror] section of that name.
func runOneSync(ctx context.Context, args []string, stdout, stderr io.Writer, mirror string) error {
	r := newSyncRun(stdout, stderr, mirror)
	_, err := r.configure(args)
	return r.complete(ctx, err)
}

// syncRun is one sync as the command runs it, in four steps: configure (settings read and
// checked, output set up), open (the job's stores), run, and finish, the one place where what
// is printed and the error the command exits with are decided.
type syncRun struct {
	f       syncFlags
	fs      *pflag.FlagSet
	mirror  string // the [mirror] section, "" for none
	began   time.Time
	jsonLog bool
	stdout  io.Writer
	stderr  io.Writer
	flushes []func()

	log      *slog.Logger // set once the flags are checked; warnings before that are plain text
	closeLog func(*slog.Logger, *error)
	metrics  bool // the run is reported in the metrics (once configured far enough)

	// What the settings describe: names as shown (no user info), then the located and opened job.
	source  string
	targets []string
	groups  []streams.Filters
	job     *job.Job
	keyring *sign.Keyring
	signer  *sign.Signer
	cf      *cloudfront.Client
	client  *http.Client // the HTTP(S) client of the source and of the read-back

	// The outcome.
	ran          bool
	fr           *sync.FanOutReport // a result per target (nil when the run did not begin)
	invalidation string
	cdnErr       error // a CloudFront invalidation that failed after a good publish: a warning
	// public is, per target, what its --public-url served after the publish (nil: not read);
	// publicErr a read-back failure under --public-strict.
	public    []*publiccheck.ReadBackResult
	publicErr error
}

func newSyncRun(stdout, stderr io.Writer, mirror string) *syncRun {
	return &syncRun{mirror: mirror, began: time.Now(), stdout: stdout, stderr: stderr}
}

// configure reads and checks the settings (flags, $SSMIRROR_*, the config file or its mirror
// section), sets up the output and the log, and locates the job. Without a mirror, a config
// file of [mirror] sections returns their names instead: the caller runs them.
func (r *syncRun) configure(args []string) ([]string, error) {
	f := &r.f
	r.fs = newSyncFlagSet(f, r.stdout)
	// Machine output on every path: a --json summary and, with --log-format json, JSON lines
	// only, whatever the run met.
	r.jsonLog = wantsJSONLog(args, os.LookupEnv)
	if err := parse(r.fs, args); err != nil {
		return nil, err
	}
	if r.mirror == "" {
		names, err := cliconfig.Mirrors(r.fs, os.LookupEnv, isSettingKey)
		if err != nil {
			return nil, err
		}
		if len(names) > 0 && len(f.Targets) > 0 {
			return nil, usagef("--%s adds a target to one run; with [mirror NAME] sections, give each mirror its targets in its section (several target lines: a fan-out)", cliconfig.TargetFlag)
		}
		if len(names) > 0 {
			return names, nil
		}
	}
	conf, err := cliconfig.ConfigureMirror(r.fs, os.LookupEnv, isSettingKey, r.mirror)
	if err != nil {
		return nil, err
	}
	r.setOutput()
	if r.mirror == "" { // several mirrors: runMirrors warns once
		warnAll(r.stderr, unknownEnv(os.Environ()))
	}
	source, targets, groups, err := syncArgs(r.fs.Args(), conf, f.Targets)
	if err != nil {
		return nil, err
	}
	r.source, r.targets, r.groups = httpstore.StripUserInfo(source), stripAll(targets), groups
	if len(targets) > 1 && f.CFDistribution != "" {
		return nil, usagef("--cloudfront-distribution invalidates one target's paths: run a target behind CloudFront on its own, not in a run with several targets")
	}
	if err := f.Sync.Check(r.fs); err != nil {
		return nil, err
	}
	if err := checkGrace(r.fs, &f.Sync, targets, r.stderr); err != nil {
		return nil, err
	}
	logOut, closeLog, err := f.compat.openLog(r.stderr)
	if err != nil {
		return nil, err
	}
	r.closeLog = closeLog
	if err := f.metrics.check(); err != nil {
		return nil, err
	}
	// From here on every failure is a failed run, reported in the metrics too.
	r.metrics = f.metrics.enabled() && !f.DryRun
	if r.job, err = job.Locate(source, targets, conf.Storage); err != nil {
		return nil, err
	}
	if r.keyring, err = f.Verify.Load(); err != nil {
		return nil, err
	}
	if r.jsonLog && logOut != r.stderr {
		jl := newJSONLines(logOut) // the --log-file
		logOut = jl
		r.flushes = append(r.flushes, jl.Flush)
	}
	verbosity := r.f.verbose
	if r.f.quiet && verbosity == 0 {
		verbosity = -1 // errors only
	}
	if r.log, err = newLogger(logOut, verbosity, f.logFormat); err != nil {
		return nil, err
	}
	r.log.Info("start", "version", version(), "source", r.source, "target", strings.Join(r.targets, ", "),
		"filters", groupStrings(groups), "dry_run", f.DryRun)
	if r.signer, err = f.LoadSigner(os.LookupEnv); err != nil {
		return nil, err
	}
	return nil, nil
}

// setOutput makes stdout and stderr JSON lines with --log-format json.
func (r *syncRun) setOutput() {
	r.jsonLog = r.f.logFormat == "json"
	if !r.jsonLog {
		return
	}
	jo := newJSONLines(r.stdout)
	je, restore := jsonStderr(r.stderr)
	r.stdout, r.stderr = jo, je
	r.flushes = append(r.flushes, restore, jo.Flush, je.Flush)
}

// complete opens and runs the configured sync (unless configuring failed: err) and finishes it.
func (r *syncRun) complete(ctx context.Context, err error) error {
	if err == nil {
		err = r.open(ctx)
	}
	if err == nil {
		err = r.run(ctx)
	}
	return r.finish(ctx, err)
}

// open opens the job's source and targets, and the CloudFront client.
func (r *syncRun) open(ctx context.Context) error {
	f := &r.f
	client, err := f.TLS.HTTPClient(r.stderr)
	if err != nil {
		return err
	}
	r.client = client
	f.S3.RetryLog = r.log
	warnUnprotected(r.stderr, r.job.Source.Loc, r.keyring != nil)
	err = r.job.Open(ctx, job.Opener{S3: &f.S3, Client: withRetryLog(client, r.log), UserAgent: userAgent(), Mirrors: f.Mirrors, Bwlimit: f.Bwlimit})
	if err != nil {
		return err
	}
	if f.CFDistribution != "" && !f.DryRun {
		if r.cf, err = cdn.NewClient(ctx, r.job.Targets[0].Loc.Profile(f.S3.Profile)); err != nil {
			return err
		}
	}
	return nil
}

// run runs the sync into every target, with progress, then invalidates the CDN's copy of the
// metadata it wrote.
func (r *syncRun) run(ctx context.Context) error {
	f := &r.f
	progress := &sync.Progress{}
	opts := f.Options(r.job.Source.Loc, r.groups, r.keyring, r.signer)
	opts.OnTransfer = limitTransferMemory // the command owns its process
	opts.Progress = progress
	opts.Log = r.log
	opts.Freshness = freshnessInfo(r.source)
	var stopProgress func()
	switch {
	case f.progress && !f.DryRun && r.jsonLog:
		stopProgress = progressJSON(progress, r.stderr, f.progressEvery)
	case f.progress && !f.DryRun:
		stopProgress = showProgress(progress, r.stderr, f.progressEvery)
	}
	r.ran = true
	fr, err := r.job.Run(ctx, opts)
	r.fr = fr
	if len(r.targets) > 1 {
		err = summarizeFanOutInterrupt(ctx, r.targets, fr, err)
	} else {
		err = summarizeInterrupt(ctx, r.report(), err)
	}
	if stopProgress != nil {
		stopProgress()
	}
	if err == nil && r.cf != nil {
		r.invalidate(ctx)
	}
	// After the publish and the invalidation: what each target's public URL serves.
	r.public, r.publicErr = readBackTargets(ctx, &f.Sync, r.job.Dsts, r.targets, r.fr, r.client, r.log, r.stderr)
	return cmp.Or(err, r.publicErr)
}

// report is a single target's report (nil: none, or several targets).
func (r *syncRun) report() *sync.Report {
	if r.fr == nil || len(r.fr.Targets) != 1 {
		return nil
	}
	return r.fr.Targets[0].Report
}

// invalidate creates the CloudFront invalidation of the metadata the run wrote. Its failure
// after a good publish is a warning: the mirror is published and consistent, so the run exits
// 0; the metrics record it (ssmirror_last_run_warnings).
func (r *syncRun) invalidate(ctx context.Context) {
	rep := r.report()
	if rep == nil || len(rep.MetadataWritten) == 0 {
		return
	}
	prefix := r.f.CFPathPrefix
	if prefix == "" {
		prefix = cdn.DefaultPathPrefix(r.job.Targets[0].Loc.Prefix)
	}
	paths := cdn.Paths(prefix, rep.MetadataWritten)
	id, err := cdn.Invalidate(ctx, r.cf, r.f.CFDistribution, paths)
	if err != nil {
		r.cdnErr = err
		warnRun(r.log, r.stderr, "mirrored, but the CDN invalidation failed", err)
		return
	}
	r.invalidation = id
	r.log.Info("CloudFront invalidation created", "distribution", r.f.CFDistribution, "id", id, "paths", paths)
}

// finish prints what the run did (the JSON summary, the dry run's plans, or the summaries),
// exports the metrics, closes the log and decides the error the command exits with: the one
// place for both.
func (r *syncRun) finish(ctx context.Context, err error) error {
	if errors.Is(err, pflag.ErrHelp) {
		r.flush()
		return err
	}
	took := time.Since(r.began)
	r.print(err, took)
	if r.metrics {
		// Report even an interrupted run, within a bounded time.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		merr := r.f.metrics.export(mctx, withPublic(runResults(r.targets, r.mirror, r.fr, took, err, r.cdnErr), r.public)...)
		cancel()
		switch {
		case merr != nil && err == nil:
			warnRun(r.log, r.stderr, "mirrored, but the metrics export failed", merr)
		case merr != nil:
			// The run's own error is the one to report; the metrics failure goes with it.
			err = fmt.Errorf("%w (and %v)", err, merr)
		}
	}
	if r.cdnErr != nil && err != nil {
		err = fmt.Errorf("%w (and %v)", err, r.cdnErr)
	}
	if r.closeLog != nil {
		r.closeLog(r.log, &err)
	}
	r.flush()
	if err != nil && r.jsonLog {
		err = jsonLogError{err}
	}
	return err
}

func (r *syncRun) flush() {
	for _, fl := range r.flushes {
		fl()
	}
}

// print prints the outcome: the JSON summary (--json: on every path, failures before the run
// included; --log-format json: once the run planned), else, once the run began, each target's
// dry-run plan or summary (and a fan-out run's upstream bytes).
func (r *syncRun) print(err error, took time.Duration) {
	fanOut := len(r.targets) > 1
	planned := r.report() != nil && r.report().Plan != nil
	switch {
	case r.f.jsonOut || (r.jsonLog && r.ran && (fanOut || planned)):
		sum := job.Summarize(r.source, r.targets, r.f.DryRun, r.fr, took, err)
		sum.CloudFrontInvalidation = r.invalidation
		if !fanOut && len(r.public) > 0 {
			sum.PublicURL = r.public[0]
		}
		for i := range sum.Targets {
			if i < len(r.public) {
				sum.Targets[i].PublicURL = r.public[i]
			}
		}
		writeSummary(r.stdout, sum, r.jsonLog)
	case !r.ran || r.fr == nil:
	case r.f.quiet && err == nil && !r.f.DryRun: // --quiet: nothing when all went well
	case fanOut:
		printTargets(r.stdout, r.stderr, r.f.DryRun, r.source, r.targets, r.fr, r.public)
	case planned && r.f.DryRun:
		printPlan(r.stdout, r.stderr, r.report())
	case planned:
		printSummary(r.stdout, r.source, describe(r.job.Dsts[0]), r.report(), took, err)
		if len(r.public) > 0 && r.public[0] != nil {
			printPublic(r.stdout, r.public[0])
		}
	}
}

// runResults are what the metrics describe: the one target's run, or each target's of a fan-out
// run (a target whose run did not report fails with the run's error).
func runResults(targets []string, mirror string, fr *sync.FanOutReport, took time.Duration, err, cdnErr error) []runResult {
	end := time.Now()
	if len(targets) <= 1 || fr == nil {
		r := runResult{target: strings.Join(targets, ","), mirror: mirror, duration: took, err: err, cdnErr: cdnErr, end: end}
		if fr != nil && len(fr.Targets) == 1 {
			r.report = fr.Targets[0].Report
		}
		return []runResult{r}
	}
	out := make([]runResult, len(targets))
	for i, t := range targets {
		r := runResult{target: t, mirror: mirror, duration: took, end: end, err: err}
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

// printTargets prints what a fan-out run did, per target: the dry run's plan or the run's
// summary; then the upstream bytes read.
func printTargets(stdout, stderr io.Writer, dryRun bool, source string, targets []string, fr *sync.FanOutReport, public []*publiccheck.ReadBackResult) {
	for i, t := range fr.Targets {
		rep := t.Report
		name := targets[i]
		switch {
		case rep == nil || rep.Plan == nil:
			fmt.Fprintf(stdout, "FAILED, nothing published: %s -> %s: %v\n", source, name, t.Err)
		case dryRun:
			fmt.Fprintf(stdout, "# %s\n", name)
			printPlan(stdout, stderr, rep)
		default:
			var own time.Duration // the target's run: its stages
			for _, st := range rep.Stages {
				own += st.Duration
			}
			printSummary(stdout, source, name, rep, own, t.Err)
			if i < len(public) && public[i] != nil {
				printPublic(stdout, public[i])
			}
			if rep.CopiedFrom > 0 {
				fmt.Fprintf(stdout, "  copied server-side from another target: %d files (%s)\n", rep.CopiedFrom, humanBytes(rep.CopiedFromBytes))
			}
		}
	}
	if !dryRun {
		fmt.Fprintf(stdout, "upstream: %s of content read once for %d targets\n", humanBytes(fr.UpstreamBytes), len(targets))
	}
}

// allFilters reports whether every argument looks like a filter.
func allFilters(args []string) bool {
	for _, a := range args {
		if !cliconfig.LooksLikeFilter(a) {
			return false
		}
	}
	return true
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
	// Filters alone as arguments, with SOURCE and TARGET configured: they replace the
	// configuration's filter groups.
	if len(pos) > 0 && allFilters(pos) && conf.Source != "" && len(configured)+len(extra) > 0 {
		filters, err := cliconfig.ParseFilterArgs(pos)
		if err != nil {
			return "", nil, nil, usageError{Err: err}
		}
		return conf.Source, append(slices.Clone(configured), extra...), []streams.Filters{filters}, nil
	}
	// SOURCE (and maybe filters) as arguments, the target configured ($SSMIRROR_TARGET, the
	// config file): the configured target is TARGET.
	if len(pos) > 0 && len(extra) == 0 && len(configured) > 0 && !cliconfig.LooksLikeFilter(pos[0]) && allFilters(pos[1:]) {
		extra = configured
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
		status = "FAILED, " + job.Outcome(rep) + ":"
	}
	fmt.Fprintf(w, "%s %s -> %s in %s\n", status, src, dst, took.Round(time.Millisecond))
	p := rep.Plan
	fmt.Fprintf(w, "  items: %d added, %d removed, %d kept\n", len(p.Added), len(p.Removed), p.Kept)
	fmt.Fprintf(w, "  files: %d fetched (%s), %d copied in the target (%s), %d already present and verified\n",
		rep.Fetched, humanBytes(rep.FetchedBytes), rep.Copied, humanBytes(rep.CopiedBytes), rep.Adopted)
	if n := len(rep.Source.LeftOut); n > 0 {
		fmt.Fprintf(w, "  left out: %d selected items the source (an ssmirror mirror) does not hold, e.g. %s", n, rep.Source.LeftOut[0])
		if rep.Source.Hint != "" {
			fmt.Fprintf(w, "; the filter '%s' says so", rep.Source.Hint)
		}
		fmt.Fprintln(w)
	}
	if len(rep.Drifted) > 0 {
		fmt.Fprintf(w, "  drift: %d recorded files were missing or replaced in the target (those still listed are brought back)\n", len(rep.Drifted))
	}
	mode := "verbatim (upstream metadata byte for byte)"
	if rep.Curated {
		mode = "curated (rewritten and signed with the signing key)"
	}
	if err == nil {
		fmt.Fprintf(w, "  metadata: %d files written, %s\n", len(rep.MetadataWritten), mode)
		fmt.Fprintf(w, "  deleted: %d%s, waiting for the grace period: %d\n", len(rep.Deleted), freedNote(rep.FreedBytes, rep.VersionsKept, rep.Versioning), rep.PendingDeletion)
	}
}
