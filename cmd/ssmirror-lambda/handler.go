package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/ssmirror/ssmirror/internal/bwlimit"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/internal/cdn"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/store/s3store"
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
}

// Summary is the invocation's result.
type Summary struct {
	Source string `json:"source"`
	Target string `json:"target"`
	DryRun bool   `json:"dry_run"`
	// Seconds is the duration of the sync.
	Seconds      float64 `json:"seconds"`
	ItemsAdded   int     `json:"items_added"`
	ItemsRemoved int     `json:"items_removed"`
	ItemsKept    int     `json:"items_kept"`
	// FilesToFetch and BytesToFetch are what the plan fetches from the source.
	FilesToFetch int   `json:"files_to_fetch"`
	BytesToFetch int64 `json:"bytes_to_fetch"`
	// The rest describe what a run (not a dry run) did.
	FilesFetched    int      `json:"files_fetched"`
	BytesFetched    int64    `json:"bytes_fetched"`
	FilesCopied     int      `json:"files_copied"`
	BytesCopied     int64    `json:"bytes_copied"`
	FilesAdopted    int      `json:"files_adopted"`
	MetadataWritten []string `json:"metadata_written"`
	Deleted         int      `json:"deleted"`
	PendingDeletion int      `json:"pending_deletion"`
	// CloudFrontInvalidation is the id of the invalidation created after the publish.
	CloudFrontInvalidation string `json:"cloudfront_invalidation,omitempty"`
}

// Environment variables the function reads. Booleans take strconv.ParseBool's forms, durations
// units.ParseDuration's (1d, 12h, 90s); an empty variable counts as unset.
const (
	envSource         = "SSMIRROR_SOURCE"                  // required: http(s)://…, s3://bucket/prefix, or a directory
	envTarget         = "SSMIRROR_TARGET"                  // required: s3://bucket/prefix
	envFilters        = "SSMIRROR_FILTERS"                 // filters separated by blanks, groups by ;
	envKeyring        = "SSMIRROR_KEYRING"                 // keyring file (in the deployment package)
	envKeyringData    = "SSMIRROR_KEYRING_DATA"            // keyring, base64
	envNoVerify       = "SSMIRROR_NO_VERIFY"               // do not check the source's signatures
	envMax            = "SSMIRROR_MAX"                     // versions kept per product (unset: all; 0 refused)
	envKeep           = "SSMIRROR_KEEP"                    // keep versions that vanished upstream
	envPrune          = "SSMIRROR_PRUNE"                   // release what the selection no longer covers
	envAllowEmpty     = "SSMIRROR_ALLOW_EMPTY"             // run even when the filters select no item
	envPath           = "SSMIRROR_PATH"                    // start metadata path
	envConcurrency    = "SSMIRROR_CONCURRENCY"             // files transferred at once
	envGCGrace        = "SSMIRROR_GC_GRACE"                // grace before deleting unreferenced objects
	envLockTimeout    = "SSMIRROR_LOCK_TIMEOUT"            // wait for another run's lock
	envLockTTL        = "SSMIRROR_LOCK_TTL"                // lease of the target's lock
	envS3Endpoint     = "SSMIRROR_S3_ENDPOINT"             // S3-compatible endpoint
	envRegion         = "SSMIRROR_REGION"                  // S3 region
	envUploadChecksum = "SSMIRROR_UPLOAD_CHECKSUM"         // crc32c (default), crc64nvme, md5, none
	envSigningKey     = "SSMIRROR_SIGNING_KEY"             // curated mode: secret key file
	envPassphrase     = "SSMIRROR_SIGNING_PASSPHRASE"      // its passphrase
	envSafetyMargin   = "SSMIRROR_SAFETY_MARGIN"           // stop this long before the deadline
	envCFDistribution = "SSMIRROR_CLOUDFRONT_DISTRIBUTION" // invalidate metadata after a publish
	envCFPathPrefix   = "SSMIRROR_CLOUDFRONT_PATH_PREFIX"  // the mirror root as the CDN serves it
	envDryRun         = "SSMIRROR_DRY_RUN"                 // plan only
	envMaxFileSize    = "SSMIRROR_MAX_FILE_SIZE"           // refuse items declared larger (bytes)
	envMinRate        = "SSMIRROR_MIN_RATE"                // per-file deadline: slowest rate, bytes/s
	envBwlimit        = "SSMIRROR_BWLIMIT"                 // download at most this many bytes/s
)

// knownEnv are the variables above: any other SSMIRROR_* variable is a typo, warned about.
var knownEnv = []string{envSource, envTarget, envFilters, envKeyring, envKeyringData, envNoVerify, envMax,
	envKeep, envPrune, envAllowEmpty, envPath, envConcurrency, envGCGrace, envLockTimeout, envLockTTL,
	envS3Endpoint, envRegion, envUploadChecksum, envSigningKey, envPassphrase, envSafetyMargin,
	envCFDistribution, envCFPathPrefix, envDryRun, envMaxFileSize, envMinRate, envBwlimit}

// unknownEnv returns the SSMIRROR_* names of environ the function does not read, each with the
// nearest name it does read ("" when none is close).
func unknownEnv(environ []string) map[string]string {
	out := map[string]string{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "SSMIRROR_") || slices.Contains(knownEnv, name) {
			continue
		}
		best, bestD := "", 4
		for _, k := range knownEnv {
			if d := streams.EditDistance(name, k); d < bestD && d <= max(1, (len(k)-len("SSMIRROR_"))/3) {
				best, bestD = k, d
			}
		}
		out[name] = best
	}
	return out
}

// DefaultSafetyMargin is how long before the invocation's deadline the sync is cancelled, so it
// stops cleanly (lock released, nothing published) instead of being killed.
const DefaultSafetyMargin = 60 * time.Second

// config is the function's configuration, read from the environment.
type config struct {
	source, target string
	srcLoc, dstLoc location
	groups         []streams.Filters
	keyring        *sign.Keyring
	noVerify       bool
	signer         *sign.Signer
	max            int
	keep, prune    bool
	allowEmpty     bool
	path           string
	concurrency    int
	maxFileSize    int
	minRate        int
	bwlimit        int
	gcGrace        time.Duration
	lockTimeout    time.Duration
	lockTTL        time.Duration
	s3             s3store.Options
	margin         time.Duration
	cfDistribution string
	cfPathPrefix   string
	dryRun         bool
}

// env reads settings, naming the variable in every error.
type env struct {
	lookup func(string) (string, bool)
	err    error
}

func (e *env) str(name string) string {
	v, _ := e.lookup(name)
	return strings.TrimSpace(v)
}

func (e *env) fail(name, format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf("$%s: %s", name, fmt.Sprintf(format, args...))
	}
}

func (e *env) boolean(name string) bool {
	v := e.str(name)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, "want true or false, not %q", v)
	}
	return b
}

func (e *env) integer(name string) int {
	v := e.str(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.fail(name, "want a number ≥ 0, not %q", v)
	}
	return n
}

func (e *env) duration(name string, def time.Duration) time.Duration {
	v := e.str(name)
	if v == "" {
		return def
	}
	d, err := units.ParseDuration(v)
	if err != nil {
		e.fail(name, "%v", err)
	}
	return d
}

// readConfig reads the configuration from the environment (lookup is os.LookupEnv outside
// tests). The keyring and signing key are loaded here, so a bad one fails before any work.
func readConfig(lookup func(string) (string, bool)) (*config, error) {
	e := &env{lookup: lookup}
	c := &config{
		source:         e.str(envSource),
		target:         e.str(envTarget),
		noVerify:       e.boolean(envNoVerify),
		max:            e.integer(envMax),
		keep:           e.boolean(envKeep),
		prune:          e.boolean(envPrune),
		allowEmpty:     e.boolean(envAllowEmpty),
		path:           e.str(envPath),
		concurrency:    e.integer(envConcurrency),
		maxFileSize:    e.integer(envMaxFileSize),
		minRate:        e.integer(envMinRate),
		bwlimit:        e.integer(envBwlimit),
		gcGrace:        e.duration(envGCGrace, sync.DefaultGCGrace),
		lockTimeout:    e.duration(envLockTimeout, 0),
		lockTTL:        e.duration(envLockTTL, sync.DefaultLockTTL),
		margin:         e.duration(envSafetyMargin, DefaultSafetyMargin),
		cfDistribution: e.str(envCFDistribution),
		cfPathPrefix:   e.str(envCFPathPrefix),
		dryRun:         e.boolean(envDryRun),
		s3:             s3store.Options{Endpoint: e.str(envS3Endpoint), Region: e.str(envRegion)},
	}
	if cs, err := s3store.ParseChecksum(e.str(envUploadChecksum)); err != nil {
		e.fail(envUploadChecksum, "%v", err)
	} else {
		c.s3.Checksum = cs
	}
	if e.err == nil && c.lockTTL < sync.MinLockTTL {
		e.fail(envLockTTL, "%s is shorter than %s", c.lockTTL, sync.MinLockTTL)
	}
	if e.str(envMax) == "0" {
		e.fail(envMax, "0 is refused: sstream-mirror reads it as \"hold no version\", ssmirror's default is every version; leave it unset to keep them all")
	}
	if e.err != nil {
		return nil, e.err
	}
	if c.source == "" || c.target == "" {
		return nil, fmt.Errorf("$%s and $%s must both be set", envSource, envTarget)
	}
	var err error
	if c.srcLoc, err = parseLocation(c.source); err != nil {
		return nil, fmt.Errorf("$%s: %w", envSource, err)
	}
	if c.dstLoc, err = parseLocation(c.target); err != nil {
		return nil, fmt.Errorf("$%s: %w", envTarget, err)
	}
	// source and target are shown (errors, logs, the summary): without user info from here on;
	// srcLoc keeps it for the request.
	c.source, c.target = httpstore.StripUserInfo(c.source), httpstore.StripUserInfo(c.target)
	if c.dstLoc.kind != "s3" {
		return nil, fmt.Errorf("$%s: %q: a Lambda function publishes into s3://bucket/prefix only (its disk does not outlive it)", envTarget, c.target)
	}
	if v := e.str(envFilters); v != "" {
		if c.groups, err = parseGroups(v); err != nil {
			return nil, fmt.Errorf("$%s: %w", envFilters, err)
		}
	}
	if c.keyring, err = readKeyring(e.str(envKeyring), e.str(envKeyringData)); err != nil {
		return nil, err
	}
	if p := e.str(envSigningKey); p != "" {
		pass, _ := lookup(envPassphrase) // taken as is: blanks may belong to it
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", envSigningKey, err)
		}
		if c.signer, err = sign.LoadSigner(bytes.NewReader(data), []byte(pass)); err != nil {
			return nil, fmt.Errorf("$%s: signing key %s: %w", envSigningKey, p, err)
		}
	}
	if c.margin < 0 {
		return nil, fmt.Errorf("$%s: must not be negative", envSafetyMargin)
	}
	return c, nil
}

// parseGroups parses filter groups written as in $SSMIRROR_FILTERS of the ssmirror command:
// filters separated by blanks, groups by ";".
func parseGroups(v string) ([]streams.Filters, error) {
	var groups []streams.Filters
	for _, g := range strings.Split(v, ";") {
		fl, err := streams.ParseFilters(strings.Fields(g))
		if err != nil {
			return nil, err
		}
		if len(fl) == 0 {
			return nil, errors.New("an empty filter group would select everything")
		}
		groups = append(groups, fl)
	}
	return groups, nil
}

// readKeyring loads the keyring from a file or from base64 data; neither gives nil.
func readKeyring(file, data string) (*sign.Keyring, error) {
	switch {
	case file != "" && data != "":
		return nil, fmt.Errorf("set $%s or $%s, not both", envKeyring, envKeyringData)
	case file != "":
		kr, err := sign.LoadKeyring(file)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", envKeyring, err)
		}
		return kr, nil
	case data != "":
		raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(data), ""))
		if err != nil {
			return nil, fmt.Errorf("$%s: not base64: %w", envKeyringData, err)
		}
		kr, err := sign.ReadKeyring(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", envKeyringData, err)
		}
		return kr, nil
	}
	return nil, nil
}

// location is a parsed SOURCE or TARGET.
type location struct {
	kind           string // "http", "s3", "dir"
	root           string // URL or directory
	bucket, prefix string
}

// parseLocation parses SOURCE or TARGET. An http(s) root keeps its user info (httpstore sends it
// as basic auth and never shows it); no message here quotes it.
func parseLocation(raw string) (location, error) {
	loc := location{root: raw}
	shown := httpstore.StripUserInfo(raw)
	switch {
	case strings.HasPrefix(raw, "http://"), strings.HasPrefix(raw, "https://"):
		loc.kind = "http"
	case strings.HasPrefix(raw, "s3://"):
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(raw, "s3://"), "/")
		if bucket == "" {
			return loc, fmt.Errorf("%q: no bucket named", shown)
		}
		if shown != raw {
			return loc, fmt.Errorf("%q: an s3:// URL takes no user info (S3 credentials come from the function's role)", shown)
		}
		loc.kind, loc.bucket, loc.prefix = "s3", bucket, prefix
	case strings.HasPrefix(raw, "file://"):
		if shown != raw {
			return loc, fmt.Errorf("%q: a file:// URL takes no user info", shown)
		}
		loc.kind, loc.root = "dir", strings.TrimPrefix(raw, "file://")
	case strings.Contains(raw, "://"):
		return loc, fmt.Errorf("%q: unsupported scheme (use http(s)://, s3:// or a directory)", shown)
	case regexp.MustCompile(`^(?i)(s3|https?|file):`).MatchString(shown):
		scheme, rest, _ := strings.Cut(shown, ":")
		return loc, fmt.Errorf("%q: a %s location is written %s://… (did you mean %s://%s?)", shown, scheme, scheme, scheme, strings.TrimLeft(rest, "/"))
	default:
		loc.kind = "dir"
	}
	return loc, nil
}

func (c *config) open(ctx context.Context, loc location) (store.Store, error) {
	switch loc.kind {
	case "http":
		return httpstore.New(httpstore.DefaultClient(), loc.root, httpstore.Options{UserAgent: "ssmirror-lambda"})
	case "s3":
		client, err := s3store.NewClient(ctx, c.s3)
		if err != nil {
			return nil, fmt.Errorf("S3 configuration: %w", err)
		}
		return s3store.New(client, loc.bucket, loc.prefix, c.s3), nil
	default:
		return dirstore.New(loc.root, dirstore.Options{})
	}
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
			time.Until(deadline).Round(time.Second), margin, envSafetyMargin)
	}
	c, cancel := context.WithDeadline(ctx, stop)
	return c, cancel, nil
}

// handle runs one sync configured from the environment, with the event's overrides.
func handle(ctx context.Context, ev Event) (*Summary, error) {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	warnUnknownEnv(log, os.Environ())
	return run(ctx, ev, os.LookupEnv, log)
}

// warnUnknownEnv logs a warning for each SSMIRROR_* variable the function does not read.
func warnUnknownEnv(log *slog.Logger, environ []string) {
	for name, near := range unknownEnv(environ) {
		if near != "" {
			log.Warn("not a setting of ssmirror-lambda, ignored", "variable", name, "did_you_mean", near)
		} else {
			log.Warn("not a setting of ssmirror-lambda, ignored", "variable", name)
		}
	}
}

func run(ctx context.Context, ev Event, lookup func(string) (string, bool), log *slog.Logger) (*Summary, error) {
	c, err := readConfig(lookup)
	if err != nil {
		return nil, err
	}
	if len(ev.Filters) > 0 {
		fl, err := streams.ParseFilters(ev.Filters)
		if err != nil {
			return nil, fmt.Errorf("event filters: %w", err)
		}
		c.groups = []streams.Filters{fl}
	}
	dryRun := c.dryRun || ev.DryRun

	runCtx, cancel, err := runContext(ctx, c.margin)
	if err != nil {
		return nil, err
	}
	defer cancel()

	src, err := c.open(runCtx, c.srcLoc)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", c.source, err)
	}
	if c.bwlimit > 0 {
		src = bwlimit.Store(src, bwlimit.New(int64(c.bwlimit), nil, nil))
	}
	dst, err := c.open(runCtx, c.dstLoc)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", c.target, err)
	}
	opts := sync.Options{
		StartPath:    c.path,
		Verification: sync.Verification{Keyring: c.keyring, NoVerify: c.noVerify},
		Max:          c.max,
		Keep:         c.keep,
		Prune:        c.prune,
		AllowEmpty:   c.allowEmpty,
		DryRun:       dryRun,
		Signer:       c.signer,
		Concurrency:  c.concurrency,
		MaxFileSize:  int64(c.maxFileSize),
		MinRate:      int64(c.minRate),
		GCGrace:      c.gcGrace,
		Log:          log,
		Lock:         sync.LockOptions{Wait: c.lockTimeout, TTL: c.lockTTL},
	}
	switch len(c.groups) {
	case 0:
	case 1:
		opts.Filters = c.groups[0]
	default:
		opts.FilterGroups = c.groups
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
	sum := summarize(c, rep, dryRun, took)
	log.Info("sync done", "source", c.source, "target", c.target, "dry_run", dryRun,
		"items_added", sum.ItemsAdded, "items_removed", sum.ItemsRemoved, "files_fetched", sum.FilesFetched,
		"bytes_fetched", sum.BytesFetched, "metadata_written", len(sum.MetadataWritten), "seconds", sum.Seconds)

	if !dryRun && c.cfDistribution != "" && len(rep.MetadataWritten) > 0 {
		prefix := c.cfPathPrefix
		if prefix == "" {
			prefix = cdn.DefaultPathPrefix(c.dstLoc.prefix)
		}
		// The invalidation gets the time the run left unused, at least the safety margin.
		cf, err := cdn.NewClient(ctx, "")
		if err == nil {
			sum.CloudFrontInvalidation, err = cdn.Invalidate(ctx, cf, c.cfDistribution, cdn.Paths(prefix, rep.MetadataWritten))
		}
		if err != nil {
			return nil, fmt.Errorf("mirrored (%d metadata files written), but %w", len(rep.MetadataWritten), err)
		}
		log.Info("CloudFront invalidation created", "distribution", c.cfDistribution, "id", sum.CloudFrontInvalidation)
	}
	return sum, nil
}

func summarize(c *config, rep *sync.Report, dryRun bool, took time.Duration) *Summary {
	s := &Summary{Source: c.source, Target: c.target, DryRun: dryRun, Seconds: took.Seconds(), MetadataWritten: []string{}}
	if p := rep.Plan; p != nil {
		s.ItemsAdded, s.ItemsRemoved, s.ItemsKept = len(p.Added), len(p.Removed), p.Kept
		s.FilesToFetch, s.BytesToFetch = len(p.Fetch), p.FetchBytes()
	}
	s.FilesFetched, s.BytesFetched = rep.Fetched, rep.FetchedBytes
	s.FilesCopied, s.BytesCopied = rep.Copied, rep.CopiedBytes
	s.FilesAdopted = rep.Adopted
	if rep.MetadataWritten != nil {
		s.MetadataWritten = rep.MetadataWritten
	}
	s.Deleted, s.PendingDeletion = len(rep.Deleted), rep.PendingDeletion
	return s
}
