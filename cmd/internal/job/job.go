// Package job is the one assembly step of ssmirror's commands (sync, status, verify, gc) and of
// the ssmirror-lambda function: it turns the settings cliconfig reads (flags, $SSMIRROR_*, the
// config file and its [mirror] sections) into an opened job — the source, every target with its
// own storage settings, the names messages use — runs it, and summarises what it did the same
// way for one target or many. Every command reads its settings and opens its stores through
// it, so a setting or a rule about locations reaches them all.
package job

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/sync"
)

// Place is one location of a job: the name messages, logs and summaries give it (as written,
// without user info) and where it is, with its own storage settings.
type Place struct {
	Name string
	Loc  cliconfig.Location
}

// Job is a sync's locations, then its opened stores.
type Job struct {
	Source  Place
	Targets []Place
	// Src and Dsts are the opened stores (Open), Dsts in the order of Targets.
	Src  store.Source
	Dsts []store.Target
	// OpenErrs are, in the order of Targets, why a target could not be opened (nil: opened).
	OpenErrs []error
}

// Locate parses a job's locations: the source and the targets, each with the storage settings
// the config file's [source] or [target] section gives it (storage, by location as written)
// added to its own URL parameters. A target given twice (one place written two ways) is
// refused. Errors name the location.
func Locate(source string, targets []string, storage map[string]cliconfig.Storage) (*Job, error) {
	if len(targets) == 0 {
		return nil, cliconfig.Usagef("no target")
	}
	j := &Job{}
	var err error
	if j.Source, err = place(source, storage); err != nil {
		return nil, err
	}
	j.Targets = make([]Place, len(targets))
	for i, t := range targets {
		if j.Targets[i], err = place(t, storage); err != nil {
			return nil, err
		}
		if cliconfig.SamePlace(j.Source.Loc, j.Targets[i].Loc) {
			return nil, cliconfig.Usagef("target %s is the source %s: a mirror cannot be published into the stream it reads; give another TARGET", j.Targets[i].Name, j.Source.Name)
		}
		for _, prev := range j.Targets[:i] {
			if cliconfig.SamePlace(prev.Loc, j.Targets[i].Loc) {
				return nil, cliconfig.Usagef("target %s is given twice", j.Targets[i].Name)
			}
		}
	}
	return j, nil
}

// place parses one location, with its config file section's storage settings.
func place(raw string, storage map[string]cliconfig.Storage) (Place, error) {
	loc, err := cliconfig.ParseLocation(raw)
	if err != nil {
		return Place{}, err
	}
	name := httpstore.StripUserInfo(raw)
	if st, ok := storage[raw]; ok {
		if loc.Storage, err = cliconfig.MergeStorage(loc.Storage, st); err != nil {
			return Place{}, cliconfig.Usagef("%s: %v", name, err)
		}
	}
	return Place{Name: name, Loc: loc}, nil
}

// Names are the targets' names, in order.
func (j *Job) Names() []string {
	out := make([]string, len(j.Targets))
	for i, t := range j.Targets {
		out[i] = t.Name
	}
	return out
}

// Opener is how a job's stores are opened: the S3 settings every s3:// location starts from
// (each location's own win over them), the HTTP client and user agent of an HTTP(S) source,
// the extra base URLs tried when it answers 404, and the source's bandwidth limit.
type Opener struct {
	S3        *cliconfig.S3Flags
	Client    *http.Client
	UserAgent string
	Mirrors   []string
	Bwlimit   int64
}

// Open opens the source and every target (a directory target is created). An error names the
// location it belongs to. With several targets, one that cannot be opened (a directory that
// cannot be created, a bad CA bundle) does not stop the others: its error is kept (OpenErrs) and
// Run reports it as that target's failure; Open fails only when the source, or every target,
// cannot be opened.
func (j *Job) Open(ctx context.Context, o Opener) error {
	src, err := cliconfig.OpenSource(ctx, j.Source.Loc, o.S3, o.Mirrors, o.Client, o.UserAgent)
	if err != nil {
		return named("source", j.Source.Name, err)
	}
	j.Src = cliconfig.LimitSource(src, o.Bwlimit)
	j.Dsts = make([]store.Target, len(j.Targets))
	j.OpenErrs = make([]error, len(j.Targets))
	var errs []error
	for i, t := range j.Targets {
		if j.Dsts[i], err = cliconfig.OpenTarget(ctx, t.Loc, o.S3); err != nil {
			j.OpenErrs[i] = named("target", t.Name, err)
			errs = append(errs, j.OpenErrs[i])
		}
	}
	if len(errs) == len(j.Targets) {
		return errors.Join(errs...)
	}
	return nil
}

// named prefixes err with the location it belongs to, unless it names it already; a usage error
// stays one.
func named(role, name string, err error) error {
	if strings.Contains(err.Error(), name) {
		return err
	}
	if _, ok := err.(cliconfig.UsageError); ok {
		return cliconfig.Usagef("%s %s: %w", role, name, err)
	}
	return fmt.Errorf("%s %s: %w", role, name, err)
}

// Run runs the sync: one target alone (sync.Run), several in one fan-out run (sync.RunTargets)
// into those Open could open. Either way the report has a result per target, in order (nil
// when nothing began); a target that could not be opened fails with its OpenErrs error, the
// others having run.
func (j *Job) Run(ctx context.Context, opts sync.Options) (*sync.FanOutReport, error) {
	if len(j.Dsts) == 1 {
		rep, err := sync.Run(ctx, j.Src, j.Dsts[0], opts)
		return &sync.FanOutReport{Targets: []sync.TargetResult{{Target: j.Targets[0].Name, Report: rep, Err: err}}}, err
	}
	var opened []store.Target
	for i, dst := range j.Dsts {
		if j.OpenErrs[i] == nil {
			opened = append(opened, dst)
		}
	}
	fr, err := sync.RunTargets(ctx, j.Src, opened, opts)
	if len(opened) == len(j.Dsts) || fr == nil {
		return fr, err
	}
	// Put the targets that could not be opened back in their places, failed.
	all := make([]sync.TargetResult, 0, len(j.Dsts))
	var failed []sync.TargetResult
	next := 0
	for i := range j.Dsts {
		res := sync.TargetResult{Target: j.Targets[i].Name, Err: j.OpenErrs[i]}
		if j.OpenErrs[i] == nil {
			res = fr.Targets[next]
			next++
		}
		if res.Err != nil {
			failed = append(failed, res)
		}
		all = append(all, res)
	}
	fr.Targets = all
	return fr, &sync.TargetsError{Failed: failed, Targets: len(j.Dsts)}
}

// Summary is the JSON summary of the run (cliconfig.Summary): one target's, or a fan-out run's
// with one summary per target. fr may be nil (nothing began).
func (j *Job) Summary(dryRun bool, fr *sync.FanOutReport, took time.Duration, err error) cliconfig.Summary {
	return Summarize(j.Source.Name, j.Names(), dryRun, fr, took, err)
}

// Summarize is the summary of a run from source into targets (names as shown): the one
// builder for one target and many.
func Summarize(source string, targets []string, dryRun bool, fr *sync.FanOutReport, took time.Duration, err error) cliconfig.Summary {
	if len(targets) > 1 {
		return cliconfig.SummarizeTargets(source, targets, dryRun, fr, took, err)
	}
	var rep *sync.Report
	if fr != nil && len(fr.Targets) == 1 {
		rep = fr.Targets[0].Report
	}
	return cliconfig.Summarize(source, strings.Join(targets, ""), dryRun, rep, took, err)
}

// One is the one existing mirror a command such as status, verify or gc works on: TARGET as
// given, else the one target the configuration names; with its storage settings from the
// config file.
type One struct {
	Place
	Store store.Target
}

// ConfigureOne reads a one-target command's settings: the flags of fs the command line did not
// set, from $SSMIRROR_* and the config file as sync reads them (keys of other commands left to
// them), of the [mirror] section named mirror, else the one listing TARGET; and the target,
// TARGET (args, at most one) or the one configured. command names the command in messages.
func ConfigureOne(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), isSetting func(string) bool, mirror, command string, args []string) (Place, error) {
	if len(args) > 1 {
		return Place{}, cliconfig.Usagef("%s needs exactly one TARGET (see ssmirror help %s)", command, command)
	}
	if v, ok := lookupEnv(cliconfig.EnvName(cliconfig.OnlyMirrorFlag)); ok && mirror == "" {
		mirror = strings.TrimSpace(v)
	}
	switch {
	case mirror != "":
	case len(args) == 1:
		m, err := cliconfig.MirrorOf(fs, lookupEnv, isSetting, args[0])
		if err != nil {
			return Place{}, err
		}
		mirror = m
	default:
		names, err := cliconfig.Mirrors(fs, lookupEnv, isSetting)
		if err != nil {
			return Place{}, err
		}
		if len(names) > 0 {
			return Place{}, cliconfig.Usagef("%s holds [mirror] sections (%s): name one with --%s NAME, or give its TARGET", cliconfig.ConfigPath(fs, lookupEnv), strings.Join(names, ", "), cliconfig.OnlyMirrorFlag)
		}
	}
	conf, err := cliconfig.ConfigureShared(fs, lookupEnv, isSetting, mirror)
	if err != nil {
		return Place{}, err
	}
	raw := ""
	switch {
	case len(args) == 1:
		raw = args[0]
	case len(conf.Targets) == 1:
		raw = conf.Targets[0]
	case len(conf.Targets) > 1:
		return Place{}, cliconfig.Usagef("%s needs exactly one TARGET: the configuration names %d (%s); give one of them", command, len(conf.Targets), strings.Join(conf.Targets, ", "))
	default:
		return Place{}, cliconfig.Usagef("%s needs exactly one TARGET: as an argument, $SSMIRROR_TARGET, or target in the config file (see ssmirror help %s)", command, command)
	}
	p, err := place(raw, conf.Storage)
	if err != nil {
		return Place{}, err
	}
	if p.Loc.Kind == "http" {
		return Place{}, cliconfig.Usagef("%s: the target must be a directory or s3://bucket/prefix", p.Loc.Root)
	}
	return p, nil
}

// OpenExisting opens a directory or bucket target that must already exist (status, verify and
// gc do not create one). An error names the target.
func OpenExisting(ctx context.Context, p Place, s3f *cliconfig.S3Flags) (store.Target, error) {
	if p.Loc.Kind == "s3" {
		dst, err := cliconfig.OpenS3(ctx, p.Loc, s3f)
		if err != nil {
			return nil, named("target", p.Name, err)
		}
		return dst, nil
	}
	root, err := filepath.Abs(p.Loc.Root)
	if err != nil {
		return nil, err
	}
	info, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("target %s is not a directory", root)
	}
	return dirstore.New(root, dirstore.Options{})
}
