package sync

import (
	"fmt"
	"testing"

	"github.com/ssmirror/ssmirror/streams"
)

// A version kept by --keep after it vanished upstream may name a path that upstream now lists
// with other content (a path reused, a file rebuilt in place). The plan must bring in what
// upstream lists now, whichever version sorts first: the published metadata promises
// upstream's sha256 for that path.
func TestPlanKeptVersionDoesNotHideUpstreamContent(t *testing.T) {
	const p = "shared/squashfs"
	oldSum, newSum := fmt.Sprintf("%064x", 1), fmt.Sprintf("%064x", 2)
	for _, oldVersion := range []string{"20250101", "20260101"} { // sorts before, and after, upstream's
		t.Run(oldVersion, func(t *testing.T) {
			held := Held{
				{cid, "jammy:amd64:ga", oldVersion}: {"squashfs": {Path: p, Size: 10, SHA256: oldSum}},
			}
			up := []streams.Item{{
				ContentID: cid, Product: "jammy:amd64:ga", Version: "20250701", Name: "squashfs",
				Path: p, Size: 10, SHA256: newSum,
				Attrs: streams.NewAttrs(map[string]string{"arch": "amd64", "release": "jammy", "ftype": "squashfs"}),
			}}
			plan := MakePlan(PlanInput{
				Upstream: up, Keep: true, Max: 2, Held: held,
				Present: map[string]Presence{p: {Size: 10, SHA256: oldSum, Owned: true}},
			})
			if len(plan.Fetch) != 1 || plan.Fetch[0].SHA256 != newSum {
				t.Errorf("fetch %+v, want %s with upstream's sha256 %s", plan.Fetch, p, newSum)
			}
		})
	}
}

// One path listed by two items, only one of which gives its sha256 (the catalogue allows a hash
// absent on one side): the fetch carries every hash some item gives for the path, whichever
// item's version sorts first, so the content is verified against what the metadata promises.
func TestPlanFetchCarriesEveryHashOfAPath(t *testing.T) {
	const p = "shared/squashfs"
	sum, md := fmt.Sprintf("%064x", 7), fmt.Sprintf("%032x", 9)
	mk := func(product, sha, md5 string) streams.Item {
		return streams.Item{
			ContentID: cid, Product: product, Version: "20250701", Name: "squashfs",
			Path: p, Size: 10, SHA256: sha, MD5: md5,
			Attrs: streams.NewAttrs(map[string]string{"arch": "amd64", "ftype": "squashfs"}),
		}
	}
	for _, up := range [][]streams.Item{
		{mk("a", "", md), mk("b", sum, "")},
		{mk("a", sum, ""), mk("b", "", md)},
	} {
		plan := MakePlan(PlanInput{Upstream: up, Held: Held{}})
		if len(plan.Fetch) != 1 || plan.Fetch[0].SHA256 != sum || plan.Fetch[0].MD5 != md {
			t.Errorf("fetch %+v, want %s with sha256 %s and md5 %s", plan.Fetch, p, sum, md)
		}
	}
}

// A path the mirror published and holds, which upstream now lists with other content, is a
// rewrite (Plan.Rewrites, refused by the run); one the target does not hold as published
// (missing, or replaced behind the mirror's back) is fetched as any other.
func TestPlanRewrites(t *testing.T) {
	const p = "jammy/squashfs"
	oldSum, newSum := fmt.Sprintf("%064x", 1), fmt.Sprintf("%064x", 2)
	held := Held{{cid, "jammy:amd64:ga", "20250701"}: {"squashfs": {Path: p, Size: 10, SHA256: oldSum}}}
	up := []streams.Item{{
		ContentID: cid, Product: "jammy:amd64:ga", Version: "20250701", Name: "squashfs",
		Path: p, Size: 12, SHA256: newSum,
		Attrs: streams.NewAttrs(map[string]string{"arch": "amd64", "release": "jammy", "ftype": "squashfs"}),
	}}
	for _, c := range []struct {
		name    string
		present map[string]Presence
		rewrite bool
	}{
		{"held as published", map[string]Presence{p: {Size: 10, SHA256: oldSum, Owned: true}}, true},
		{"missing", map[string]Presence{}, false},
		{"replaced behind the mirror's back", map[string]Presence{p: {Size: 11}}, false},
	} {
		plan := MakePlan(PlanInput{Upstream: up, Held: held, Present: c.present})
		if len(plan.Fetch) != 1 {
			t.Errorf("%s: fetch %+v", c.name, plan.Fetch)
		}
		want := []Rewrite(nil)
		if c.rewrite {
			want = []Rewrite{{Path: p, Size: 10, SHA256: oldSum, NewSize: 12, NewSHA256: newSum}}
		}
		if fmt.Sprint(plan.Rewrites) != fmt.Sprint(want) {
			t.Errorf("%s: rewrites %+v, want %+v", c.name, plan.Rewrites, want)
		}
	}
}
