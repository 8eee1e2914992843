package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/cmd/internal/job"
	"github.com/ssmirror/ssmirror/internal/cdn"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/sign"
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

	job     *job.Job // the source and targets, named as shown (without user info)
	groups  []streams.Filters
	keyring *sign.Keyring
	signer  *sign.Signer
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
	return readMirrorConfig(lookup, "", Event{})
}

// readMirrorConfig is readConfig for the [mirror] section mirror of the config file ("": the
// configuration as a whole), with the event's keys applied as the command applies its command
// line: its filters replace the configured ones (as FILTER arguments do), dry_run is the
// dry-run setting.
func readMirrorConfig(lookup func(string) (string, bool), mirror string, ev Event) (*config, error) {
	c := &config{}
	c.fs = newFlagSet(c)
	var args []string
	if ev.DryRun {
		args = append(args, "--dry-run")
	}
	if err := c.fs.Parse(args); err != nil {
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
	if conf.Source == "" || len(conf.Targets) == 0 {
		return nil, fmt.Errorf("$SSMIRROR_SOURCE and $SSMIRROR_TARGET must both be set (or source and target in the config file)")
	}
	if _, err := cliconfig.ParseLocation(conf.Source); err != nil {
		return nil, fmt.Errorf("%s: %w", origin(lookup, "SOURCE"), err)
	}
	if c.job, err = job.Locate(conf.Source, conf.Targets, conf.Storage); err != nil {
		return nil, fmt.Errorf("%s: %w", origin(lookup, "TARGET"), err)
	}
	for _, t := range c.job.Targets {
		if t.Loc.Kind != "s3" {
			return nil, fmt.Errorf("%s: %q: a Lambda function publishes into s3://bucket/prefix only (its disk does not outlive it)", origin(lookup, "TARGET"), t.Name)
		}
	}
	if len(c.job.Targets) > 1 && c.flags.CFDistribution != "" {
		return nil, fmt.Errorf("$SSMIRROR_CLOUDFRONT_DISTRIBUTION invalidates one target's paths: a function with several targets cannot name one")
	}
	locs := make([]cliconfig.Location, len(c.job.Targets))
	for i, t := range c.job.Targets {
		locs[i] = t.Loc
	}
	if c.graceWarning, err = c.flags.CheckGrace(c.fs, locs); err != nil {
		return nil, err
	}
	c.groups = conf.Groups
	if len(ev.Filters) > 0 {
		fl, err := cliconfig.ParseFilterArgs(ev.Filters)
		if err != nil {
			return nil, fmt.Errorf("event filters: %w", err)
		}
		c.groups = []streams.Filters{fl}
	}
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
func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	warnUnknownEnv(log, os.Environ())
	ev, err := decodeEvent(raw)
	if err != nil {
		return nil, err
	}
	return runAll(ctx, ev, os.LookupEnv, log)
}

// eventKeys are the keys of Event; envelopeKeys those of an EventBridge event, which carry no
// setting and are ignored.
var (
	eventKeys    = []string{"filters", "dry_run", "mirrors"}
	envelopeKeys = []string{"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
)

// decodeEvent reads an invocation's event. A key that is neither the event's nor EventBridge's
// is refused, named with the key it probably misspells, as the command refuses an unknown flag:
// a misspelt "dry_run" must not let a real run publish.
func decodeEvent(raw json.RawMessage) (Event, error) {
	var ev Event
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return ev, nil
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return ev, fmt.Errorf("event: %w", err)
	}
	var keys map[string]json.RawMessage
	if json.Unmarshal(raw, &keys) != nil {
		return ev, nil
	}
	known := make([]string, len(eventKeys))
	for i, k := range eventKeys {
		known[i] = cliconfig.EnvPrefix + k
	}
	for k := range keys {
		if slices.Contains(eventKeys, k) || slices.Contains(envelopeKeys, k) {
			continue
		}
		msg := fmt.Sprintf("event key %q is not a setting of an invocation (%s)", k, strings.Join(eventKeys, ", "))
		if near := cliconfig.NearestName(cliconfig.EnvPrefix+strings.ReplaceAll(k, "-", "_"), known); near != "" {
			msg += fmt.Sprintf("; did you mean %s?", strings.TrimPrefix(near, cliconfig.EnvPrefix))
		}
		return ev, errors.New(msg)
	}
	return ev, nil
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
// configuration describes) into its targets: one, or several in one fan-out run. The summary's
// targets say what each did; a run in which some target failed returns an error naming each
// (the others published).
func runMirror(ctx context.Context, ev Event, lookup func(string) (string, bool), log *slog.Logger, mirror string) (*Summary, error) {
	c, err := readMirrorConfig(lookup, mirror, ev)
	if err != nil {
		return nil, err
	}
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
	err = c.job.Open(runCtx, job.Opener{S3: &c.flags.S3, Client: client, UserAgent: "ssmirror-lambda", Mirrors: c.flags.Mirrors, Bwlimit: c.flags.Bwlimit})
	if err != nil {
		return nil, err
	}
	opts := c.flags.Options(c.job.Source.Loc, c.groups, c.keyring, c.signer)
	opts.Log = log
	opts.Freshness = sync.FreshnessInfo{Upstream: c.job.Source.Name, Generator: generator()}
	if c.graceWarning != "" {
		log.Warn(c.graceWarning)
	}

	began := time.Now()
	fr, err := c.job.Run(runCtx, opts)
	took := time.Since(began)
	if err != nil {
		if runCtx.Err() != nil && ctx.Err() == nil {
			left := job.LeftBehindAll(c.job.Names(), fr)
			return nil, fmt.Errorf("stopped %s before the invocation's deadline after %s (%s)%s: %w", c.margin, took.Round(time.Second), left, c.bwlimitEstimate(fr, took), err)
		}
		return nil, err
	}
	sum := c.job.Summary(dryRun, fr, took, nil)
	log.Info("sync done", "source", c.job.Source.Name, "target", sum.Target, "dry_run", dryRun,
		"items_added", sum.ItemsAdded, "items_removed", sum.ItemsRemoved, "files_fetched", sum.FilesFetched,
		"bytes_fetched", sum.BytesFetched, "upstream_bytes", fr.UpstreamBytes, "metadata_written", len(sum.MetadataWritten), "seconds", sum.Seconds)
	if !dryRun && c.flags.CFDistribution != "" && len(sum.MetadataWritten) > 0 {
		if sum.CloudFrontInvalidation, err = c.invalidate(ctx, sum.MetadataWritten); err != nil {
			return nil, fmt.Errorf("mirrored (%d metadata files written), but %w", len(sum.MetadataWritten), err)
		}
		log.Info("CloudFront invalidation created", "distribution", c.flags.CFDistribution, "id", sum.CloudFrontInvalidation)
	}
	// After the publish and the invalidation: what each target's public URL serves.
	var publicErrs []error
	for i, t := range fr.Targets {
		if dryRun || c.flags.Public.URL(i) == "" || t.Err != nil || t.Report == nil || c.job.Dsts[i] == nil {
			continue
		}
		res, err := readBack(ctx, c, i, c.job.Dsts[i], t.Report, client, log)
		if len(fr.Targets) == 1 {
			sum.PublicURL = res
		} else if i < len(sum.Targets) {
			sum.Targets[i].PublicURL = res
		}
		if err != nil {
			publicErrs = append(publicErrs, err)
		}
	}
	return &sum, errors.Join(publicErrs...)
}

// bwlimitEstimate says, for a run stopped before its deadline under a bandwidth limit, how long
// what it had to fetch takes at that limit against the time it had, so that an operator whose
// runs never finish sees why ("" without a limit or a plan).
func (c *config) bwlimitEstimate(fr *sync.FanOutReport, took time.Duration) string {
	if c.flags.Bwlimit <= 0 {
		return ""
	}
	var toFetch int64
	for _, t := range fanOutTargets(fr) {
		if t.Report != nil && t.Report.Plan != nil {
			var n int64
			for _, f := range t.Report.Plan.Fetch {
				n += f.Size
			}
			toFetch = max(toFetch, n)
		}
	}
	if toFetch == 0 {
		return fmt.Sprintf("; at $%s=%s/s the catalogue was not even read in the %s this invocation had (the function's timeout less $%s): raise $%s or the function's timeout (at most 15 minutes)",
			cliconfig.EnvName("bwlimit"), units.FormatSize(c.flags.Bwlimit), took.Round(time.Second), cliconfig.EnvName("safety-margin"), cliconfig.EnvName("bwlimit"))
	}
	need := time.Duration(float64(toFetch) / float64(c.flags.Bwlimit) * float64(time.Second))
	if need <= took {
		return "" // the limit is not why it ran out of time
	}
	return fmt.Sprintf("; it had %.1f MiB to fetch, about %s at $%s=%s/s, more than the %s this invocation had (the function's timeout less $%s): raise $%s or the function's timeout (at most 15 minutes), or select less per run",
		float64(toFetch)/(1<<20), need.Round(time.Second), cliconfig.EnvName("bwlimit"), units.FormatSize(c.flags.Bwlimit), took.Round(time.Second),
		cliconfig.EnvName("safety-margin"), cliconfig.EnvName("bwlimit"))
}

func fanOutTargets(fr *sync.FanOutReport) []sync.TargetResult {
	if fr == nil {
		return nil
	}
	return fr.Targets
}

// invalidate creates the CloudFront invalidation of the metadata the run wrote into its one
// target. It gets the time the run left unused, at least the safety margin.
func (c *config) invalidate(ctx context.Context, written []string) (string, error) {
	prefix := c.flags.CFPathPrefix
	if prefix == "" {
		prefix = cdn.DefaultPathPrefix(c.job.Targets[0].Loc.Prefix)
	}
	cf, err := cdn.NewClient(ctx, c.job.Targets[0].Loc.Profile(c.flags.S3.Profile))
	if err != nil {
		return "", err
	}
	return cdn.Invalidate(ctx, cf, c.flags.CFDistribution, cdn.Paths(prefix, written))
}
