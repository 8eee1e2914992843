package main

import (
	"testing"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/store/dirstore"
)

// Without --bwlimit (0, or none: -1) the source is used as opened: nothing draws from a bucket.
func TestBwlimitOffByDefault(t *testing.T) {
	src, err := dirstore.New(t.TempDir(), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rate := range []int64{0, -1} {
		if got := cliconfig.LimitSource(src, rate); got != src {
			t.Errorf("rate %d: source wrapped as %T", rate, got)
		}
	}
	if got := cliconfig.LimitSource(src, 1<<20); got == src {
		t.Error("--bwlimit 1MiB left the source unlimited")
	}
}
