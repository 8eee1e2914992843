package sync

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ssmirror/ssmirror/streams"
)

const cid = "com.ubuntu.maas:stable:v3:download"
const bootCID = "com.ubuntu.maas:stable:1:bootloader-download"

// item builds an upstream item of a MAAS-shaped product "rel:arch:kernel".
func item(product, version, name string, attrs ...string) streams.Item {
	parts := strings.Split(product, ":")
	rel, arch := parts[0], parts[1]
	path := fmt.Sprintf("%s/%s/%s/%s", rel, arch, version, name)
	if name == "boot-kernel" {
		path = fmt.Sprintf("%s/%s/%s/%s/%s", rel, arch, version, parts[2], name)
	}
	m := map[string]string{
		"os": "ubuntu", "release": rel, "arch": arch, "product_name": product,
		"version_name": version, "item_name": name, "ftype": name, "path": path,
	}
	for i := 0; i+1 < len(attrs); i += 2 {
		m[attrs[i]] = attrs[i+1]
	}
	return streams.Item{
		ContentID: cid, Product: product, Version: version, Name: name,
		Path: path, Size: int64(len(path)), SHA256: fmt.Sprintf("%064x", len(path)),
		Attrs: streams.NewAttrs(m),
	}
}

func bootloader(os, arch, version string) streams.Item {
	product := "bootloader:" + os + ":" + arch
	path := fmt.Sprintf("bootloaders/%s/%s/%s/x.tar.xz", os, arch, version)
	return streams.Item{
		ContentID: bootCID, Product: product, Version: version, Name: "archive",
		Path: path, Size: 7, SHA256: fmt.Sprintf("%064x", 7),
		Attrs: streams.NewAttrs(map[string]string{"os": os, "arch": arch, "product_name": product, "version_name": version, "item_name": "archive"}),
	}
}

// maasUpstream: two releases, ga and hwe kernels sharing squashfs, two versions, bootloaders.
func maasUpstream(versions ...string) []streams.Item {
	var items []streams.Item
	for _, rel := range []string{"focal", "jammy"} {
		for _, arch := range []string{"amd64", "arm64"} {
			for _, k := range []string{"ga", "hwe"} {
				for _, v := range versions {
					p := rel + ":" + arch + ":" + k
					items = append(items, item(p, v, "boot-kernel", "subarch", k), item(p, v, "squashfs", "subarch", k))
				}
			}
		}
	}
	for _, v := range versions {
		items = append(items, bootloader("grub-efi-signed", "amd64", v), bootloader("pxelinux", "i386", v))
	}
	return items
}

func filters(t *testing.T, args ...string) streams.Filters {
	t.Helper()
	fs, err := streams.ParseFilters(args)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func heldKeys(h Held) []string {
	var out []string
	for _, k := range h.Keys() {
		var items []string
		for name := range h[k] {
			items = append(items, name)
		}
		sort.Strings(items)
		out = append(out, k.Product+"@"+k.Version+"="+strings.Join(items, ","))
	}
	return out
}

func fetchPaths(p *Plan) []string {
	var out []string
	for _, f := range p.Fetch {
		s := f.Path
		if f.Check {
			s += " (check)"
		}
		out = append(out, s)
	}
	return out
}

// presentAll marks every path fetched by p as present, verified and owned.
func presentAll(p *Plan, into map[string]Presence) map[string]Presence {
	if into == nil {
		into = map[string]Presence{}
	}
	for _, f := range p.Fetch {
		into[f.Path] = Presence{Size: f.Size, SHA256: f.SHA256, Owned: true}
	}
	return into
}

func TestPlanMaxSelectsNewestAndFetchesSharedPathsOnce(t *testing.T) {
	p := MakePlan(PlanInput{
		Upstream: maasUpstream("20250701", "20250718"),
		Filters:  filters(t, "arch=amd64", "release~(jammy)"),
		Max:      1,
		Held:     Held{},
	})
	want := []string{
		"jammy:amd64:ga@20250718=boot-kernel,squashfs",
		"jammy:amd64:hwe@20250718=boot-kernel,squashfs",
	}
	if diff := cmp.Diff(want, heldKeys(p.Held)); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	// ga and hwe share the squashfs path: fetched once.
	wantFetch := []string{
		"jammy/amd64/20250718/ga/boot-kernel",
		"jammy/amd64/20250718/hwe/boot-kernel",
		"jammy/amd64/20250718/squashfs",
	}
	if diff := cmp.Diff(wantFetch, fetchPaths(p)); diff != "" {
		t.Errorf("fetch (-want +got):\n%s", diff)
	}
	if len(p.Added) != 4 || len(p.Removed) != 0 || p.Kept != 0 {
		t.Errorf("added %d removed %d kept %d, want 4 0 0", len(p.Added), len(p.Removed), p.Kept)
	}
}

func TestPlanMAASRecipeAccumulates(t *testing.T) {
	up := maasUpstream("20250701", "20250718")
	first := MakePlan(PlanInput{Upstream: up, Filters: filters(t, "arch=amd64", "release~(focal|jammy)"), Max: 1, Held: Held{}})
	present := presentAll(first, nil)
	second := MakePlan(PlanInput{Upstream: up, Filters: filters(t, "os~(grub*|pxelinux)"), Max: 1, Held: first.Held, Present: present})
	if len(second.Removed) != 0 {
		t.Errorf("second run removes %v; it must keep the first run's items", second.Removed)
	}
	if second.Kept != first.Held.Items() {
		t.Errorf("second run keeps %d items, want all %d of the first", second.Kept, first.Held.Items())
	}
	want := []string{
		"bootloaders/grub-efi-signed/amd64/20250718/x.tar.xz",
		"bootloaders/pxelinux/i386/20250718/x.tar.xz",
	}
	if diff := cmp.Diff(want, fetchPaths(second)); diff != "" {
		t.Errorf("second run fetch (-want +got):\n%s", diff)
	}
	if len(second.Unreferenced) != 0 {
		t.Errorf("second run releases %v", second.Unreferenced)
	}
	// A third run, the first command again, changes nothing.
	present = presentAll(second, present)
	third := MakePlan(PlanInput{Upstream: up, Filters: filters(t, "arch=amd64", "release~(focal|jammy)"), Max: 1, Held: second.Held, Present: present})
	if len(third.Fetch)+len(third.Added)+len(third.Removed)+len(third.Unreferenced) != 0 {
		t.Errorf("up-to-date run plans work: fetch %v added %v removed %v unreferenced %v", third.Fetch, third.Added, third.Removed, third.Unreferenced)
	}
}

func TestPlanNewVersionReleasesOld(t *testing.T) {
	f := filters(t, "release=jammy", "arch=amd64", "subarch=ga")
	first := MakePlan(PlanInput{Upstream: maasUpstream("20250701"), Filters: f, Max: 1, Held: Held{}})
	present := presentAll(first, nil)
	second := MakePlan(PlanInput{Upstream: maasUpstream("20250701", "20250718"), Filters: f, Max: 1, Held: first.Held, Present: present})
	if diff := cmp.Diff([]string{"jammy:amd64:ga@20250718=boot-kernel,squashfs"}, heldKeys(second.Held)); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	wantGone := []string{"jammy/amd64/20250701/ga/boot-kernel", "jammy/amd64/20250701/squashfs"}
	if diff := cmp.Diff(wantGone, second.Unreferenced); diff != "" {
		t.Errorf("unreferenced (-want +got):\n%s", diff)
	}
	if len(second.Removed) != 2 || len(second.Added) != 2 {
		t.Errorf("removed %d added %d, want 2 and 2", len(second.Removed), len(second.Added))
	}
	// --max 2 keeps both.
	both := MakePlan(PlanInput{Upstream: maasUpstream("20250701", "20250718"), Filters: f, Max: 2, Held: first.Held, Present: present})
	if len(both.Unreferenced) != 0 || len(both.Held) != 2 {
		t.Errorf("--max 2: held %v, unreferenced %v", heldKeys(both.Held), both.Unreferenced)
	}
}

func TestPlanVanishedVersions(t *testing.T) {
	f := filters(t, "release=jammy", "arch=amd64", "subarch=ga")
	first := MakePlan(PlanInput{Upstream: maasUpstream("20250701"), Filters: f, Max: 2, Held: Held{}})
	present := presentAll(first, nil)
	// Upstream replaces 20250701 by 20250718.
	up := maasUpstream("20250718")
	gone := MakePlan(PlanInput{Upstream: up, Filters: f, Max: 2, Held: first.Held, Present: present})
	if diff := cmp.Diff([]string{"jammy:amd64:ga@20250718=boot-kernel,squashfs"}, heldKeys(gone.Held)); diff != "" {
		t.Errorf("without --keep (-want +got):\n%s", diff)
	}
	kept := MakePlan(PlanInput{Upstream: up, Filters: f, Max: 2, Keep: true, Held: first.Held, Present: present})
	want := []string{"jammy:amd64:ga@20250701=boot-kernel,squashfs", "jammy:amd64:ga@20250718=boot-kernel,squashfs"}
	if diff := cmp.Diff(want, heldKeys(kept.Held)); diff != "" {
		t.Errorf("with --keep (-want +got):\n%s", diff)
	}
	if len(kept.Unreferenced) != 0 {
		t.Errorf("with --keep releases %v", kept.Unreferenced)
	}
	// --keep within --max 1: no room for the vanished version.
	tight := MakePlan(PlanInput{Upstream: up, Filters: f, Max: 1, Keep: true, Held: first.Held, Present: present})
	if len(tight.Held) != 1 {
		t.Errorf("--keep --max 1 holds %v", heldKeys(tight.Held))
	}
	// An unselected product whose version vanished is released too, unless --keep.
	other := MakePlan(PlanInput{Upstream: up, Filters: filters(t, "os=pxelinux"), Max: 1, Held: first.Held, Present: present})
	if _, ok := other.Held[VersionKey{cid, "jammy:amd64:ga", "20250701"}]; ok {
		t.Errorf("vanished version of an unselected product still held")
	}
}

func TestPlanPrune(t *testing.T) {
	up := maasUpstream("20250718")
	first := MakePlan(PlanInput{Upstream: up, Filters: filters(t, "release=jammy", "arch=amd64"), Held: Held{}})
	present := presentAll(first, nil)
	narrowed := filters(t, "release=jammy", "arch=amd64", "subarch=hwe")
	acc := MakePlan(PlanInput{Upstream: up, Filters: narrowed, Held: first.Held, Present: present})
	if len(acc.Removed) != 0 {
		t.Errorf("narrowed filters without --prune remove %v", acc.Removed)
	}
	pruned := MakePlan(PlanInput{Upstream: up, Filters: narrowed, Prune: true, Held: first.Held, Present: present})
	if diff := cmp.Diff([]string{"jammy:amd64:hwe@20250718=boot-kernel,squashfs"}, heldKeys(pruned.Held)); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	// The ga kernel goes; the squashfs it shared with hwe stays referenced.
	if diff := cmp.Diff([]string{"jammy/amd64/20250718/ga/boot-kernel"}, pruned.Unreferenced); diff != "" {
		t.Errorf("unreferenced (-want +got):\n%s", diff)
	}
}

func TestPlanPresence(t *testing.T) {
	up := []streams.Item{item("jammy:amd64:ga", "1", "squashfs"), item("jammy:amd64:ga", "1", "boot-kernel")}
	sq, k := up[0], up[1]
	p := MakePlan(PlanInput{
		Upstream: up,
		Held:     Held{},
		Present: map[string]Presence{
			sq.Path:          {Size: sq.Size},                 // right size, unknown hash: check it
			k.Path:           {Size: k.Size + 1, Owned: true}, // wrong size: fetch again
			"stray/file":     {Size: 3},                       // not ours: never released
			"old/owned/file": {Size: 3, Owned: true},          // ours, unreferenced: released
		},
	})
	want := []string{k.Path, sq.Path + " (check)"}
	if diff := cmp.Diff(want, fetchPaths(p)); diff != "" {
		t.Errorf("fetch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"old/owned/file"}, p.Unreferenced); diff != "" {
		t.Errorf("unreferenced (-want +got):\n%s", diff)
	}
	// Verified objects are trusted, unless VerifyExisting.
	present := map[string]Presence{sq.Path: {Size: sq.Size, SHA256: sq.SHA256, Owned: true}, k.Path: {Size: k.Size, SHA256: k.SHA256, Owned: true}}
	if p := MakePlan(PlanInput{Upstream: up, Held: Held{}, Present: present}); len(p.Fetch) != 0 {
		t.Errorf("verified objects fetched again: %v", fetchPaths(p))
	}
	p = MakePlan(PlanInput{Upstream: up, Held: Held{}, Present: present, VerifyExisting: true})
	if diff := cmp.Diff([]string{k.Path + " (check)", sq.Path + " (check)"}, fetchPaths(p)); diff != "" {
		t.Errorf("--verify-existing (-want +got):\n%s", diff)
	}
}

func TestPlanFilterGroupsAreORed(t *testing.T) {
	up := maasUpstream("20250701", "20250718")
	groups := []streams.Filters{
		filters(t, "arch=amd64", "release~(focal|jammy)"),
		filters(t, "os~(grub*|pxelinux)"),
	}
	one := MakePlan(PlanInput{Upstream: up, FilterGroups: groups, Max: 1, Held: Held{}})
	// The same as the MAAS recipe's two runs.
	first := MakePlan(PlanInput{Upstream: up, Filters: groups[0], Max: 1, Held: Held{}})
	second := MakePlan(PlanInput{Upstream: up, Filters: groups[1], Max: 1, Held: first.Held})
	if diff := cmp.Diff(heldKeys(second.Held), heldKeys(one.Held)); diff != "" {
		t.Errorf("one run with two groups differs from two runs (-two runs +groups):\n%s", diff)
	}
	if len(one.Held) == 0 {
		t.Fatal("nothing selected")
	}
}
