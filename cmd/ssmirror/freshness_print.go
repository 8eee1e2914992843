package main

import (
	"fmt"
	"io"
	"time"

	"github.com/ssmirror/ssmirror/sync"
)

// printFreshness prints the freshness record a mirror published (status, check).
func printFreshness(w io.Writer, f *sync.Freshness) {
	if f == nil {
		fmt.Fprintf(w, "freshness record: none (%s is written by each publish of a current ssmirror)\n", sync.FreshnessKey)
		return
	}
	prev := "none"
	if f.PreviousPublished != nil {
		prev = f.PreviousPublished.UTC().Format(time.RFC3339)
	}
	key := f.SigningKey
	if key == "" && len(f.UpstreamKeys) > 0 {
		key = "upstream's, verified against " + f.UpstreamKeys[0]
		if len(f.UpstreamKeys) > 1 {
			key += fmt.Sprintf(" and %d more", len(f.UpstreamKeys)-1)
		}
	}
	if key == "" {
		key = "none verified"
	}
	fmt.Fprintf(w, "freshness record: published %s (previous publish %s), by %s\n",
		f.Published.UTC().Format(time.RFC3339), prev, f.Generator)
	fmt.Fprintf(w, "  upstream %s, mode %s, signing key %s\n", f.Upstream, f.Mode, key)
	fmt.Fprintf(w, "  index %s updated %s; %d files (%s)\n", f.Index, f.IndexUpdated, f.Files, humanBytes(f.Bytes))
	for _, p := range f.Products {
		fmt.Fprintf(w, "  %s: newest version %s (updated %s)\n", p.ContentID, p.NewestVersion, p.Updated)
	}
}
