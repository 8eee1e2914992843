package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/internal/cdn"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// Event is what an invocation may carry. An EventBridge scheduled event carries none of these
// fields (its own fields are ignored), so a schedule runs the sync configured in the
// environment; a schedule with a constant JSON input, or a manual test invocation, may set them.
type Event struct {
	// Filters, when not empty, is one filter group (all must hold) replacing $SSMIRROR_FILTERS.
	Filters []string `json:"filters,omitempty"`
	// DryRun plans and reports without changing anything.
	DryRun bool `json:"dry_run,omitempty"`
	// Mirrors, with a config file of [mirror NAME] sections, are the sections to run (default:
	// $SSMIRROR_ONLY_MIRROR, else all of them); Filters then apply to each.
	Mirrors []string `json:"mirrors,omitempty"`
}

// Summary is the invocation's result: the summary ssmirror --json prints.
type Summary = cliconfig.Summary

// DefaultSafetyMargin is how long before the invocation's deadline the sync is cancelled, so it
// stops cleanly (lock released, nothing published) instead of being killed.
const DefaultSafetyMargin = 60 * time.Second

// The function reads the settings of ssmirror sync (cliconfig.Sync) the way the command does,
// without a command line: each from its environment variable (SSMIRROR_ and the flag's name:
// $SSMIRROR_MAX, $SSMIRROR_S3_ENDPOINT), else from the config file named by $SSMIRROR_CONFIG
// (in the deployment package), else the flag's default. $SSMIRROR_SOURCE, $SSMIRROR_TARGET and
// $SSMIRROR_FILTERS (or source, target and [filter] sections) give what the command takes as
// arguments; several targets (a fan-out run: $SSMIRROR_TARGET holding them separated by commas
// or blanks, or several target lines) are published in one run, as ssmirror does. Two settings are the function's own: $SSMIRROR_KEYRING_DATA and
// $SSMIRROR_SAFETY_MARGIN.

// config is the function's configuration, read and checked.
type config struct {
	flags cliconfig.Sync
	fs    *pflag.FlagSet
	// keyringData is the keyring, base64: the function's alternative to a keyring file.
	keyringData string
	// margin is how long before the invocation's deadline the sync stops.
	margin time.Duration

	source, target string // shown: without user info
	srcLoc, dstLoc cliconfig.Location
	groups         []streams.Filters
	keyring        *sign.Keyring
	signer         *sign.Signer

	// more and moreLocs are the targets after the first, of a fan-out run (shown like target).
	more     []string
	moreLocs []cliconfig.Location
	// graceWarning is what the grace rule says of an accepted short or zero grace ("": nothing).
	graceWarning string
}

// newFlagSet makes the function's flag set, filling c: the sync settings and the function's own.
func newFlagSet(c *config) *pflag.FlagSet {
	fs := pflag.NewFlagSet("ssmirror-lambda", pflag.ContinueOnError)
	c.flags.AddFlags(fs)
	fs.StringVar(&c.keyringData, "keyring-data", "", "the keyring, base64 (instead of a keyring file)")
	fs.Var(units.NewDuration(&c.margin, DefaultSafetyMargin), "safety-margin", "stop this long before the invocation's deadline")
	return fs
}

// readConfig reads the configuration from the environment (lookup is os.LookupEnv outside
// tests) and the config file it may name. The keyring and signing key are loaded here, so a bad
// one fails before any work.
func readConfig(lookup func(string) (string, bool)) (*config, error) {
	return readMirrorConfig(lookup, "")
}

// readMirrorConfig is readConfig for the [mirror] section mirror of the config file ("": the
// configuration as a whole).
func readMirrorConfig(lookup func(string) (string, bool), mirror string) (*config, error) {
	c := &config{}
	c.fs = newFlagSet(c)
	if err := c.fs.Parse(nil); err != nil {
		return nil, err
	}
	conf, err := cliconfig.ConfigureMirror(c.fs, lookup, nil, mirror)
	if err != nil {
		return nil, err
	}
	if err := c.flags.Check(c.fs); err != nil {
		return nil, err
	}
	if c.margin < 0 {
		return nil, fmt.Errorf("%s--safety-margin must not be negative", cliconfig.From(c.fs, "safety-margin"))
	}
	if conf.Source == "" || conf.Target == "" {
		return nil, fmt.Errorf("$SSMIRROR_SOURCE and $SSMIRROR_TARGET must both be set (or source and target in the config file)")
	}
	if c.srcLoc, err = cliconfig.ParseLocation(conf.Source); err != nil {
		return nil, fmt.Errorf("%s: %w", origin(lookup, "SOURCE"), err)
	}
	if c.dstLoc, err = cliconfig.ParseLocation(conf.Target); err != nil {
		return nil, fmt.Errorf("%s: %w", origin(lookup, "TARGET"), err)
	}
	// source and target are shown (errors, logs, the summary): without user info; srcLoc keeps
	// it for the request.
	c.source, c.target = httpstore.StripUserInfo(conf.Source), httpstore.StripUserInfo(conf.Target)
	if c.dstLoc.Kind != "s3" {
		return nil, fmt.Errorf("%s: %q: a Lambda function publishes into s3://bucket/prefix only (its disk does not outlive it)", origin(lookup, "TARGET"), c.target)
	}
	for _, t := range conf.Targets[min(1, len(conf.Targets)):] {
		loc, err := cliconfig.ParseLocation(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", origin(lookup, "TARGET"), err)
		}
		if loc.Kind != "s3" {
			return nil, fmt.Errorf("%s: %q: a Lambda function publishes into s3://bucket/prefix only (its disk does not outlive it)", origin(lookup, "TARGET"), httpstore.StripUserInfo(t))
		}
		c.more, c.moreLocs = append(c.more, httpstore.StripUserInfo(t)), append(c.moreLocs, loc)
	}
	if len(c.more) > 0 && c.flags.CFDistribution != "" {
		return nil, fmt.Errorf("$SSMIRROR_CLOUDFRONT_DISTRIBUTION invalidates one target's paths: a function with several targets cannot name one")
	}
	if c.graceWarning, err = c.flags.CheckGrace(c.fs, append([]cliconfig.Location{c.dstLoc}, c.moreLocs...)); err != nil {
		return nil, err
	}
	c.groups = conf.Groups
	if c.keyring, err = c.readKeyring(); err != nil {
		return nil, err
	}
	if c.signer, err = c.flags.LoadSigner(lookup); err != nil {
		return nil, fmt.Errorf("%s%w", cliconfig.From(c.fs, "signing-key"), err)
	}
	return c, nil
}

// origin names where SOURCE or TARGET came from: its variable, else the config file.
func origin(lookup func(string) (string, bool), name string) string {
	if v, ok := lookup(cliconfig.EnvPrefix + name); ok && v != "" {
		return "$" + cliconfig.EnvPrefix + name
	}
	return strings.ToLower(name) + " (config file)"
}

// readKeyring loads the keyring from a file or from base64 data; neither gives nil.
func (c *config) readKeyring() (*sign.Keyring, error) {
	switch {
	case c.keyringData == "":
		kr, err := c.flags.Verify.Load()
		if err != nil {
			return nil, fmt.Errorf("%s%w", cliconfig.From(c.fs, "keyring"), err)
		}
		return kr, nil
	case c.flags.Verify.Keyring != "":
		return nil, fmt.Errorf("set $SSMIRROR_KEYRING or $SSMIRROR_KEYRING_DATA, not both")
	case c.flags.Verify.NoVerify:
		return nil, fmt.Errorf("$SSMIRROR_KEYRING_DATA and $SSMIRROR_NO_VERIFY contradict each other")
	}
	from := cliconfig.From(c.fs, "keyring-data")
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.keyringData), ""))
	if err != nil {
		return nil, fmt.Errorf("%snot base64: %w", from, err)
	}
	kr, err := sign.ReadKeyring(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s%w", from, err)
	}
	return kr, nil
}

// runContext returns the context the sync runs under: cancelled margin before ctx's deadline
// (the invocation's), so the run stops cleanly before Lambda kills it. Without a deadline it is
// ctx itself. A deadline already within the margin is an error.
func runContext(ctx context.Context, margin time.Duration) (context.Context, context.CancelFunc, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		c, cancel := context.WithCancel(ctx)
		return c, cancel, nil
	}
	stop := deadline.Add(-margin)
	if left := time.Until(stop); left <= 0 {
		return nil, nil, fmt.Errorf("the invocation has %s left, no more than the safety margin of %s ($%s): raise the function's timeout (up to 15 minutes)",
			time.Until(deadline).Round(time.Second), margin, cliconfig.EnvName("safety-margin"))
	}
	c, cancel := context.WithDeadline(ctx, stop)
	return c, cancel, nil
}

// handle runs the sync configured from the environment, with the event's overrides: one, or
// each [mirror] section of the config file (runMirrors).
func handle(ctx context.Context, ev Event) (any, error) {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	warnUnknownEnv(log, os.Environ())
	return runAll(ctx, ev, os.LookupEnv, log)
}

// knownEnv are the SSMIRROR_* variables the function reads.
func knownEnv() []string {
	return cliconfig.KnownEnv(cliconfig.BaseEnvNames, newFlagSet(&config{}))
}

// warnUnknownEnv logs a warning for each SSMIRROR_* variable the function does not read.
func warnUnknownEnv(log *slog.Logger, environ []string) {
	for _, u := range cliconfig.UnknownEnv(environ, knownEnv) {
		if u.Near != "" {
			log.Warn("not a setting of ssmirror-lambda, ignored", "variable", u.Name, "did_you_mean", u.Near)
		} else {
			log.Warn("not a setting of ssmirror-lambda, ignored", "variable", u.Name)
		}
	}
}

// run runs the one sync the configuration describes.
func run(ctx context.Context, ev Event, lookup func(string) (string, bool), log *slog.Logger) (*Summary, error) {
	return runMirror(ctx, ev, lookup, log, "")
}

// runMirror runs the sync of the config file's [mirror] section mirror ("": the one sync the
// configuration describes).
func runMirror(ctx context.Context, ev Event, lookup func(string) (string, bool), log *slog.Logger, mirror string) (*Summary, error) {
	c, err := readMirrorConfig(lookup, mirror)
	if err != nil {
		return nil, err
	}
	if len(ev.Filters) > 0 {
		fl, err := cliconfig.ParseFilterArgs(ev.Filters)
		if err != nil {
			return nil, fmt.Errorf("event filters: %w", err)
		}
		c.groups = []streams.Filters{fl}
	}
	c.flags.DryRun = c.flags.DryRun || ev.DryRun
	dryRun := c.flags.DryRun

	runCtx, cancel, err := runContext(ctx, c.margin)
	if err != nil {
		return nil, err
	}
	defer cancel()

	client, err := c.flags.TLS.HTTPClient(os.Stderr)
	if err != nil {
		return nil, err
	}
	c.flags.S3.RetryLog = log
	src, err := cliconfig.OpenSource(runCtx, c.srcLoc, &c.flags.S3, c.flags.Mirrors, client, "ssmirror-lambda")
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", c.source, err)
	}
	src = cliconfig.LimitSource(src, c.flags.Bwlimit)
	dst, err := cliconfig.OpenTarget(runCtx, c.dstLoc, &c.flags.S3)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", c.target, err)
	}
	opts := c.flags.Options(c.srcLoc, c.groups, c.keyring, c.signer)
	opts.Log = log
	opts.Freshness = sync.FreshnessInfo{Upstream: c.source, Generator: generator()}
	if c.graceWarning != "" {
		log.Warn(c.graceWarning)
	}

	if len(c.more) > 0 {
		return runTargets(ctx, runCtx, c, src, dst, opts, dryRun, client, log)
	}
	began := time.Now()
	rep, err := sync.Run(runCtx, src, dst, opts)
	took := time.Since(began)
	if err != nil {
		if runCtx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("stopped %s before the invocation's deadline after %s, nothing published (the next run keeps the files that arrived and carries on): %w",
				c.margin, took.Round(time.Second), err)
		}
		return nil, err
	}
	sum := cliconfig.Summarize(c.source, c.target, dryRun, rep, took, nil)
	log.Info("sync done", "source", c.source, "target", c.target, "dry_run", dryRun,
		"items_added", sum.ItemsAdded, "items_removed", sum.ItemsRemoved, "files_fetched", sum.FilesFetched,
		"bytes_fetched", sum.BytesFetched, "metadata_written", len(sum.MetadataWritten), "seconds", sum.Seconds)

	if !dryRun && c.flags.CFDistribution != "" && len(rep.MetadataWritten) > 0 {
		prefix := c.flags.CFPathPrefix
		if prefix == "" {
			prefix = cdn.DefaultPathPrefix(c.dstLoc.Prefix)
		}
		// The invalidation gets the time the run left unused, at least the safety margin.
		cf, err := cdn.NewClient(ctx, c.flags.S3.Profile)
		if err == nil {
			sum.CloudFrontInvalidation, err = cdn.Invalidate(ctx, cf, c.flags.CFDistribution, cdn.Paths(prefix, rep.MetadataWritten))
		}
		if err != nil {
			return nil, fmt.Errorf("mirrored (%d metadata files written), but %w", len(rep.MetadataWritten), err)
		}
		log.Info("CloudFront invalidation created", "distribution", c.flags.CFDistribution, "id", sum.CloudFrontInvalidation)
	}
	if !dryRun && c.flags.Public.URL(0) != "" {
		res, err := readBack(ctx, c, 0, dst, rep, client, log)
		sum.PublicURL = res
		if err != nil {
			return &sum, err
		}
	}
	return &sum, nil
}

// runTargets is run for several targets (a fan-out run): the summary's targets say what each
// did; a run in which some target failed returns an error naming each (the others published).
func runTargets(ctx, runCtx context.Context, c *config, src store.Source, first store.Target, opts sync.Options, dryRun bool, client *http.Client, log *slog.Logger) (*Summary, error) {
	dsts := []store.Target{first}
	for i, loc := range c.moreLocs {
		dst, err := cliconfig.OpenTarget(runCtx, loc, &c.flags.S3)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", c.more[i], err)
		}
		dsts = append(dsts, dst)
	}
	began := time.Now()
	fr, err := sync.RunTargets(runCtx, src, dsts, opts)
	took := time.Since(began)
	if err != nil {
		if runCtx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("stopped %s before the invocation's deadline after %s (the next run keeps the files that arrived and carries on): %w",
				c.margin, took.Round(time.Second), err)
		}
		return nil, err
	}
	sum := cliconfig.SummarizeTargets(c.source, append([]string{c.target}, c.more...), dryRun, fr, took, nil)
	var publicErrs []error
	for i, t := range fr.Targets {
		if dryRun || i >= len(dsts) || i >= len(sum.Targets) || c.flags.Public.URL(i) == "" || t.Err != nil || t.Report == nil {
			continue
		}
		res, err := readBack(ctx, c, i, dsts[i], t.Report, client, log)
		sum.Targets[i].PublicURL = res
		if err != nil {
			publicErrs = append(publicErrs, err)
		}
	}
	log.Info("sync done", "source", c.source, "target", sum.Target, "dry_run", dryRun,
		"items_added", sum.ItemsAdded, "items_removed", sum.ItemsRemoved, "files_fetched", sum.FilesFetched,
		"upstream_bytes", fr.UpstreamBytes, "metadata_written", len(sum.MetadataWritten), "seconds", sum.Seconds)
	return &sum, errors.Join(publicErrs...)
}
