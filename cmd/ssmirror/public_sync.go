package main

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
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
