package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
)

// Several mirrors per invocation: with $SSMIRROR_CONFIG naming a file of [mirror NAME] sections
// (bundled in the deployment package), an invocation runs each section, or those the event's
// "mirrors" (else $SSMIRROR_ONLY_MIRROR) name, one after the other or $SSMIRROR_PARALLEL_MIRRORS
// at once, all within the one invocation's deadline (less the safety margin). One failing does
// not stop the others. The result is MirrorsResult when every mirror succeeded; otherwise the
// invocation fails (so that the schedule's alarms fire) with an error naming each failed mirror,
// and each mirror's outcome is in the log ("sync done" or "mirror failed", with a "mirror"
// field).

// MirrorsResult is the result of an invocation that ran a config file's [mirror] sections.
type MirrorsResult struct {
	OK      bool            `json:"ok"`
	Mirrors []MirrorSummary `json:"mirrors"`
}

// MirrorSummary is one mirror's summary, under its section's name.
type MirrorSummary struct {
	Mirror  string   `json:"mirror"`
	Summary *Summary `json:"summary"`
}

// runAll runs what the configuration describes: one sync, or the [mirror] sections of its file.
func runAll(ctx context.Context, ev Event, lookup func(string) (string, bool), log *slog.Logger) (any, error) {
	c := &config{}
	fs := newFlagSet(c)
	if err := fs.Parse(nil); err != nil {
		return nil, err
	}
	names, err := cliconfig.Mirrors(fs, lookup, nil)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if len(ev.Mirrors) > 0 {
			return nil, fmt.Errorf("the event names mirrors (%s), but the configuration has no [mirror NAME] sections ($SSMIRROR_CONFIG)", strings.Join(ev.Mirrors, ", "))
		}
		return run(ctx, ev, lookup, log)
	}
	return runMirrors(ctx, ev, lookup, log, names)
}

// runMirrors runs the config file's [mirror] sections names (those the event or
// $SSMIRROR_ONLY_MIRROR pick). Every section is read and checked before any runs.
func runMirrors(ctx context.Context, ev Event, lookup func(string) (string, bool), log *slog.Logger, names []string) (*MirrorsResult, error) {
	var first *config
	for _, name := range names {
		c, err := readMirrorConfig(lookup, name, ev)
		if err != nil {
			return nil, fmt.Errorf("mirror %s: %w", name, err)
		}
		if first == nil {
			first = c
		}
	}
	pick := first.flags.Sections.Only
	if len(ev.Mirrors) > 0 {
		pick = ev.Mirrors
	}
	picked, err := cliconfig.PickMirrors(cliconfig.ConfigPath(first.fs, lookup), names, pick)
	if err != nil {
		return nil, err
	}
	sums := make([]*Summary, len(picked))
	errs := cliconfig.RunMirrors(ctx, picked, first.flags.Sections.Parallel, func(ctx context.Context, name string) error {
		mlog := log.With("mirror", name)
		sum, err := runMirror(ctx, ev, lookup, mlog, name)
		if err != nil {
			mlog.Error("mirror failed", "error", err.Error())
		}
		for i, n := range picked {
			if n == name {
				sums[i] = sum
			}
		}
		return err
	})
	res := &MirrorsResult{OK: true, Mirrors: []MirrorSummary{}}
	var failed []error
	for i, name := range picked {
		res.Mirrors = append(res.Mirrors, MirrorSummary{Mirror: name, Summary: sums[i]})
		if errs[i] != nil {
			res.OK = false
			failed = append(failed, fmt.Errorf("mirror %s: %w", name, errs[i]))
		}
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("%d of %d mirrors failed (the others are published): %w", len(failed), len(picked), errors.Join(failed...))
	}
	return res, nil
}
