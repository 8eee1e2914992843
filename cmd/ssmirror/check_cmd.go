package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/internal/publiccheck"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/store/httpstore"
)

const checkUsage = `Usage: ssmirror check [flags] URL [FILTER...]

Read a mirror only through the URL its clients read it from (the CDN, the caching proxy, the web
server), as a site would: the index and every products file (signatures checked with --keyring),
every file the items name (a HEAD request each, its size compared; a few picked at random are
read and hashed; --deep hashes every one), and the freshness record ssmirror publishes with the
metadata (.ssmirror/freshness.json), which must name the metadata served: a cache serving one
older than the other is reported stale. Nothing is written, nothing bypasses a cache.

A verbatim mirror lists what upstream lists and holds only its selection: give the sync's
FILTERs and --max, and only the items they select are checked. A curated mirror lists exactly
what it holds: check it whole.

--max-age DURATION fails the check when the mirror's last publish (or its last successful run,
when the URL serves .ssmirror/lock) is older: a monitor's staleness alarm.

Exit status 0: everything served as listed; 1: a file missing or wrong, metadata stale, older
than --max-age, or the metadata unreadable; 2: bad command line. --json prints one JSON
report on every path, failures included.

URL  http(s)://host/path/ of the mirror root (or its streams/v1/NAME.sjson|.json to start there)

Examples:
  ssmirror check https://maas-images.example.com/ephemeral-v3/stable/
  ssmirror check --keyring=mirror-keyring.gpg --max-age=2d --json https://cdn.example.com/stable/
  ssmirror check --deep https://cdn.example.com/stable/ 'arch=amd64' --max=1
`

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var (
		vf          cliconfig.Verify
		tlsf        cliconfig.TLSFlags
		maxVersions int
		path        string
		jsonOut     bool
		deep        bool
		sample      int
		concurrency int
		maxAge      time.Duration
	)
	fs := newFlagSet("check", checkUsage, stdout)
	vf.AddFlags(fs)
	fs.IntVar(&maxVersions, "max", 0, "check at most N versions per product, the newest (as the sync's --max; default: all)")
	fs.StringVar(&path, "path", "", "start from this metadata path instead of streams/v1/index.sjson (or index.json)")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON (on every path, failures included)")
	fs.BoolVar(&deep, "deep", false, "read and hash every file (default: HEAD each, hash a few)")
	fs.IntVar(&sample, "sample", 3, "without --deep, how many files picked at random are read and hashed")
	fs.IntVar(&concurrency, "concurrency", 8, "requests in flight")
	fs.Var(units.NewDuration(&maxAge, 0), "max-age", "fail when the last publish (or last successful run) is older than this, as 2d or 12h (default: no limit)")
	tlsf.AddFlags(fs)
	url := ""
	if jsonOut0 := wantsFlag(args, "json"); jsonOut0 {
		defer func() {
			if err != nil && !errors.Is(err, errCheckFailed) && !isHelp(err) {
				writeJSON(stdout, &publiccheck.CheckReport{URL: url, Error: err.Error(), Missing: []publiccheck.Problem{}, Stale: []publiccheck.Problem{}})
			}
		}()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return usagef("check needs the mirror's URL (see ssmirror help check)")
	}
	url = httpstore.StripUserInfo(fs.Arg(0))
	if err := cliconfig.CheckMax(fs, maxVersions); err != nil {
		return err
	}
	loc, err := cliconfig.ParseLocation(fs.Arg(0))
	if err != nil {
		return err
	}
	if loc.Kind != "http" {
		return usagef("check reads a mirror through its http(s) URL, as clients do; for a directory or a bucket, use ssmirror verify")
	}
	filters, err := cliconfig.ParseFilterArgs(fs.Args()[1:])
	if err != nil {
		return usageError{Err: err}
	}
	keyring, err := vf.Load()
	if err != nil {
		return err
	}
	client, err := tlsf.HTTPClient(stderr)
	if err != nil {
		return err
	}
	c, err := publiccheck.NewClient(client, loc.Root, userAgent())
	if err != nil {
		return usageError{Err: err}
	}
	start := loc.Start
	if path != "" {
		start = path
	}
	rep, err := c.Check(ctx, publiccheck.CheckOptions{
		StartPath: start, Keyring: keyring, Filters: filters, Max: maxVersions, MaxAge: maxAge,
		Files: publiccheck.FilesOptions{Deep: deep, Sample: sample, Concurrency: concurrency},
	})
	if err != nil {
		return err
	}
	if jsonOut {
		writeJSON(stdout, rep)
	} else {
		printCheck(stdout, rep)
	}
	if !rep.OK {
		var why []string
		if n := len(rep.Missing); n > 0 {
			why = append(why, fmt.Sprintf("%d missing or wrong", n))
		}
		if n := len(rep.Stale); n > 0 {
			why = append(why, fmt.Sprintf("%d stale", n))
		}
		if rep.TooOld {
			why = append(why, "older than --max-age "+units.FormatDuration(maxAge))
		}
		return fmt.Errorf("%w: %s", errCheckFailed, strings.Join(why, ", "))
	}
	return nil
}

// errCheckFailed is check's exit 1 once its report is printed.
var errCheckFailed = errors.New("check failed")

// wantsFlag reports whether args set the boolean flag name (before any "--").
func wantsFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--"+name || a == "--"+name+"=true" {
			return true
		}
	}
	return false
}

func isHelp(err error) bool { return errors.Is(err, pflag.ErrHelp) }

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func printCheck(w io.Writer, r *publiccheck.CheckReport) {
	sig := "not checked (no --keyring)"
	if r.Verified {
		sig = "verified"
	}
	fmt.Fprintf(w, "%s: index %s (updated %s), %d products files, signatures %s\n", r.URL, r.Index, r.IndexUpdated, r.Products, sig)
	fmt.Fprintf(w, "files: %d named by %d items (%s), %d served as listed, %d hashed\n",
		r.Files, r.Items, humanBytes(r.Bytes), r.Files-countFiles(r.Missing), r.Hashed)
	printFreshness(w, r.Freshness)
	if r.Freshness != nil && r.Freshness.Mode == "curated" {
		if r.FreshnessVerified {
			fmt.Fprintln(w, "  signed record: verified")
		} else {
			fmt.Fprintln(w, "  signed record: not checked (no --keyring)")
		}
	}
	if r.LastSuccess != nil {
		fmt.Fprintf(w, "last successful run: %s\n", r.LastSuccess.Format(time.RFC3339))
	}
	if r.AgeSeconds != nil {
		age := time.Duration(*r.AgeSeconds * float64(time.Second)).Round(time.Second)
		line := fmt.Sprintf("age: %s", age)
		if r.MaxAgeSeconds != nil {
			limit := time.Duration(*r.MaxAgeSeconds * float64(time.Second))
			if r.TooOld {
				line += fmt.Sprintf(", OLDER than --max-age %s", units.FormatDuration(limit))
			} else {
				line += fmt.Sprintf(", within --max-age %s", units.FormatDuration(limit))
			}
		}
		fmt.Fprintln(w, line)
	} else if r.TooOld {
		fmt.Fprintln(w, "age: unknown (no freshness record, no readable lease): fails --max-age")
	}
	for _, p := range r.Stale {
		fmt.Fprintf(w, "STALE %s\n", p)
	}
	for _, p := range r.Missing {
		fmt.Fprintf(w, "MISSING %s\n", p)
	}
	if r.OK {
		fmt.Fprintln(w, "ok: the public URL serves the mirror as its metadata lists it")
	}
}

// countFiles counts the problems that are about content files (not the mirror's own).
func countFiles(ps []publiccheck.Problem) int {
	n := 0
	for _, p := range ps {
		if !strings.HasPrefix(p.Path, ".ssmirror/") && !strings.HasPrefix(p.Path, "streams/") {
			n++
		}
	}
	return n
}
