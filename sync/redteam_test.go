package sync_test

import (
	"context"
	"testing"

	"github.com/ssmirror/ssmirror/sync"
)

// An item whose content lies under streams/ but outside the mirror's metadata directory
// (streams/v1/) is allowed (CheckControlPaths), so it must also count as content when the run
// reconciles with the target's listing: otherwise every run finds it "drifted" and fetches it
// again, and an up-to-date target is never up to date.
func TestContentUnderStreamsIsUpToDate(t *testing.T) {
	for _, p := range []string{"streams/extra.bin", "streams/v2/x/squashfs"} {
		t.Run(p, func(t *testing.T) {
			src := hostileUpstream(t, map[string]string{"squashfs": "noble/squashfs", "extra": p}, "sha256")
			_, dst := newTarget(t)
			opts := sync.Options{StartPath: "streams/v1/index.json"}
			if _, err := sync.Run(context.Background(), src, dst, opts); err != nil {
				t.Fatal(err)
			}
			rep, err := sync.Run(context.Background(), src, dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Fetched != 0 || rep.Adopted != 0 || len(rep.Drifted) != 0 || len(rep.Plan.Fetch) != 0 {
				t.Errorf("second run: fetched %d, adopted %d, drifted %v, plan fetch %v; want an up-to-date run", rep.Fetched, rep.Adopted, rep.Drifted, rep.Plan.Fetch)
			}
		})
	}
}
