package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/internal/publiccheck"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/sync"
)

// What a sync adds for the readers behind caches: the grace rule before any work, and what the
// freshness record says of the run.

// checkGrace refuses (exit 2) a --gc-grace that caches in front of the targets could outlive,
// and prints the warning of one accepted anyway (cliconfig.Sync.CheckGrace).
func checkGrace(fs *pflag.FlagSet, f *cliconfig.Sync, targets []string, stderr io.Writer) error {
	locs := make([]cliconfig.Location, 0, len(targets))
	for _, t := range targets {
		loc, err := cliconfig.ParseLocation(t)
		if err != nil {
			return err
		}
		locs = append(locs, loc)
	}
	warn, err := f.CheckGrace(fs, locs)
	if err != nil {
		return err
	}
	if warn != "" {
		fmt.Fprintf(stderr, "ssmirror: warning: %s\n", warn)
	}
	return nil
}

// freshnessInfo is what the freshness record says of the run: where from, and which ssmirror.
func freshnessInfo(source string) sync.FreshnessInfo {
	return sync.FreshnessInfo{Upstream: httpstore.StripUserInfo(source), Generator: "ssmirror " + version()}
}

// readBack reads what the run published into dst back through the target's public URL
// (publiccheck.ReadBack): the freshness record the run left in the target names the metadata,
// and the report's plan the files held.
func readBack(ctx context.Context, f *cliconfig.Sync, publicURL string, dst store.Target, rep *sync.Report, client *http.Client) (*publiccheck.ReadBackResult, error) {
	expect, err := publiccheck.ExpectPublished(ctx, dst, rep.Plan, !f.NoItemDownload)
	if err != nil {
		return nil, fmt.Errorf("reading back through %s: %w", publicURL, err)
	}
	c, err := publiccheck.NewClient(client, publicURL, userAgent())
	if err != nil {
		return nil, err
	}
	res, err := c.ReadBack(ctx, expect, publiccheck.ReadBackOptions{
		Wait: f.Public.Wait, Files: publiccheck.FilesOptions{Sample: publicSample, Concurrency: 8},
	})
	if err != nil {
		return nil, fmt.Errorf("reading back through %s: %w", publicURL, err)
	}
	return res, nil
}

// publicSample is how many files a read-back reads whole and hashes.
const publicSample = 3

// publicOutcome says what a read-back found: logged when the URL serves the publish, a warning
// when not (the mirror itself is published and consistent), or, with --public-strict, the
// run's error.
func publicOutcome(res *publiccheck.ReadBackResult, err error, strict bool, target string, log *slog.Logger, stderr io.Writer) error {
	if err == nil {
		err = res.Err()
	}
	if err == nil {
		log.Info("the public URL serves the publish", "target", target, "url", res.URL,
			"index_seconds", deref(res.IndexSeconds), "files_checked", res.FilesChecked, "files_hashed", res.FilesHashed)
		return nil
	}
	if strict {
		return fmt.Errorf("mirrored %s, but %w", target, err)
	}
	warnRun(log, stderr, "mirrored, but the public URL does not serve the publish", err)
	return nil
}

func deref(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}

// printPublic adds the read-back to a run's text summary.
func printPublic(w io.Writer, res *publiccheck.ReadBackResult) {
	if res == nil {
		return
	}
	idx := "not within the wait"
	if res.IndexSeconds != nil {
		idx = fmt.Sprintf("after %.1fs", *res.IndexSeconds)
	}
	fmt.Fprintf(w, "  public URL %s: new index served %s; %d stale, %d missing or wrong; %d files checked, %d hashed\n",
		res.URL, idx, len(res.Stale), len(res.Missing), res.FilesChecked, res.FilesHashed)
	for _, p := range res.Stale {
		fmt.Fprintf(w, "    STALE %s\n", p)
	}
	for _, p := range res.Missing {
		fmt.Fprintf(w, "    MISSING %s\n", p)
	}
}

// readBackTargets reads each target of a fan-out run that published back through its public
// URL (one result per target, nil for a target without a URL or that failed); the error is a
// --public-strict failure.
func readBackTargets(ctx context.Context, f *cliconfig.Sync, dsts []store.Target, names []string, fr *sync.FanOutReport, client *http.Client, log *slog.Logger, stderr io.Writer) ([]*publiccheck.ReadBackResult, error) {
	if f.DryRun || fr == nil || len(f.Public.URLs) == 0 {
		return nil, nil
	}
	out := make([]*publiccheck.ReadBackResult, len(dsts))
	var errs []error
	for i, t := range fr.Targets {
		if i >= len(dsts) || f.Public.URL(i) == "" || t.Err != nil || t.Report == nil {
			continue
		}
		res, err := readBack(ctx, f, f.Public.URL(i), dsts[i], t.Report, client)
		out[i] = res
		if perr := publicOutcome(res, err, f.Public.Strict, names[i], log, stderr); perr != nil {
			errs = append(errs, perr)
		}
	}
	return out, errors.Join(errs...)
}

// withPublic adds each target's read-back to its metrics.
func withPublic(rs []runResult, public []*publiccheck.ReadBackResult) []runResult {
	for i := range rs {
		if i < len(public) {
			rs[i].public = public[i]
		}
	}
	return rs
}
