package sync

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ssmirror/ssmirror/streams"
)

func TestCheckSelection(t *testing.T) {
	up := maasUpstream("20250701", "20250718")
	g := func(args ...string) streams.Filters { return filters(t, args...) }
	for _, tc := range []struct {
		name    string
		filters streams.Filters
		groups  []streams.Filters
		want    string // regexp the error must match; "" for none
	}{
		{"matches", g("arch=amd64"), nil, ""},
		{"no filters", nil, nil, ""},
		{"typo", g("arch==amd64"), nil,
			`^the selection matches no item \(arch==amd64\): no item has arch "=amd64"; arch is one of: "amd64", "arm64", "i386" \(did you mean arch=amd64\?\) \(nothing was written; an empty selection is refused unless allowed\)$`},
		{"unknown key", g("relase=jammy"), nil, `no item has the key "relase" \(nearest known keys: release\)`},
		{"groups all match", nil, []streams.Filters{g("arch=amd64"), g("os~grub")}, ""},
		{"one group empty", nil, []streams.Filters{g("arch=amd64"), g("os~(grub*|pxelinx)", "arch=i368")},
			`^1 of 2 filter groups match no item:\n  filter group 2 \(os~\(grub\*\|pxelinx\) arch=i368\): no item has arch "i368"; .*\(did you mean arch=i386\?\)\nnothing was written`},
		{"every group empty", g("release=jammy"), []streams.Filters{g("arch=s390x"), g("os=centos")},
			`^the selection matches no item:\n  filter group 1 \(release=jammy arch=s390x\): no item has arch "s390x".*\n  filter group 2 \(release=jammy os=centos\): no item has os "centos"`},
		{"common filters empty the group", g("release=jammy"), []streams.Filters{g("os~pxelinux")},
			`filter group 1 \(release=jammy os~pxelinux\): release=jammy and os~pxelinux match no item together`},
		{"empty catalogue", nil, nil, ""}, // upstream replaced below
	} {
		t.Run(tc.name, func(t *testing.T) {
			items := up
			want := tc.want
			if tc.name == "empty catalogue" {
				items, want = nil, `the catalogue lists no item at all`
			}
			err := CheckSelection(items, tc.filters, tc.groups)
			if want == "" {
				if err != nil {
					t.Fatalf("refused a selection that matches: %v", err)
				}
				return
			}
			var ee *EmptySelectionError
			if !errors.As(err, &ee) {
				t.Fatalf("got %v, want an *EmptySelectionError", err)
			}
			if !regexp.MustCompile(want).MatchString(err.Error()) {
				t.Errorf("got  %q\nwant /%s/", err, want)
			}
		})
	}
}

func TestCheckControlPaths(t *testing.T) {
	vk := VersionKey{cid, "p", "1"}
	control := []string{LockKey, StateKey, "streams/v1/index.json", "streams/v1/index.sjson", "streams/v1/index.json.gpg",
		"streams/v1/c.json", "streams/v1/c.sjson", "streams/v1/c.json.gpg", "meta/other/x.json"}
	for _, tc := range []struct {
		path string
		want string // "" : allowed
	}{
		{"jammy/amd64/20250718/squashfs", ""},
		{"streams/v2/x", ""},
		{"ssmirror/lock", ""},
		{"meta/other2", ""},
		{".ssmirror/lock", "is the mirror's lock"},
		{".ssmirror/state.json", "is the mirror's state"},
		{".ssmirror/anything", "is under the mirror's control directory .ssmirror/"},
		{".SSMirror/Lock", "is the mirror's lock"},
		{"Streams/V1/index.JSON", "is one of the mirror's metadata files"},
		{".ssmirror", "would stand where the directory of the mirror's .ssmirror/lock is"},
		{"streams/v1/index.json", "is one of the mirror's metadata files"},
		{"streams/v1/c.json.gpg", "is one of the mirror's metadata files"},
		{"streams/v1/other.tar.gz", "is under the mirror's metadata directory streams/v1/"},
		{"streams", "would stand where the directory of the mirror's streams/v1/index.json is"},
		{"meta/other/x.json", "is one of the mirror's metadata files"},
		{"meta/other", "would stand where the directory of the mirror's meta/other/x.json is"},
	} {
		held := Held{vk: {"a": {Path: "ok/path"}, "b": {Path: tc.path}, "c": {}}}
		err := CheckControlPaths(held, control)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s refused: %v", tc.path, err)
			}
			continue
		}
		var ce *ControlPathError
		if !errors.As(err, &ce) {
			t.Errorf("%s: got %v, want a *ControlPathError", tc.path, err)
			continue
		}
		want := []ControlPathItem{{Version: vk, Item: "b", Path: tc.path, Why: tc.want}}
		if diff := cmp.Diff(want, ce.Items); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.path, diff)
		}
		if msg := err.Error(); !regexp.MustCompile(`item b: path ` + regexp.QuoteMeta(tc.path) + ` ` + regexp.QuoteMeta(tc.want)).MatchString(msg) {
			t.Errorf("%s: message %q", tc.path, msg)
		}
	}
}

func TestPlanWholeVersions(t *testing.T) {
	var up []streams.Item
	for _, v := range []string{"20250701", "20250718"} {
		for _, name := range []string{"boot-kernel", "boot-initrd", "manifest", "squashfs"} {
			up = append(up, item("noble:amd64:ga", v, name, "subarch", "ga"))
		}
	}
	in := PlanInput{Upstream: up, Filters: filters(t, "ftype!=manifest"), Max: 1, Held: Held{}}

	// Verbatim: the filters decide item by item.
	p := MakePlan(in)
	if diff := cmp.Diff([]string{"noble:amd64:ga@20250718=boot-initrd,boot-kernel,squashfs"}, heldKeys(p.Held)); diff != "" {
		t.Errorf("verbatim held (-want +got):\n%s", diff)
	}
	if len(p.Widened) != 0 {
		t.Errorf("verbatim plan widened %v", p.Widened)
	}

	// Whole versions: the manifest comes too, and the plan says so.
	in.WholeVersions = true
	p = MakePlan(in)
	if diff := cmp.Diff([]string{"noble:amd64:ga@20250718=boot-initrd,boot-kernel,manifest,squashfs"}, heldKeys(p.Held)); diff != "" {
		t.Errorf("whole held (-want +got):\n%s", diff)
	}
	want := []ItemChange{{VersionKey{cid, "noble:amd64:ga", "20250718"}, "manifest", "noble/amd64/20250718/manifest", int64(len("noble/amd64/20250718/manifest"))}}
	if diff := cmp.Diff(want, p.Widened); diff != "" {
		t.Errorf("widened (-want +got):\n%s", diff)
	}
	if !contains(fetchPaths(p), "noble/amd64/20250718/manifest") {
		t.Errorf("the manifest is not fetched: %v", fetchPaths(p))
	}

	// A version held from before with some items (a partial curated mirror) is made whole when
	// a later run no longer selects its product.
	partial := Held{VersionKey{cid, "noble:amd64:ga", "20250718"}: {"squashfs": heldItem(&up[7])}}
	p = MakePlan(PlanInput{Upstream: up, Filters: filters(t, "release=jammy"), Held: partial, WholeVersions: true})
	if diff := cmp.Diff([]string{"noble:amd64:ga@20250718=boot-initrd,boot-kernel,manifest,squashfs"}, heldKeys(p.Held)); diff != "" {
		t.Errorf("partial held version (-want +got):\n%s", diff)
	}
}

// FuzzCheckControlPaths compares the refusal with a plain scan over the control keys.
func FuzzCheckControlPaths(f *testing.F) {
	control := []string{LockKey, StateKey, "streams/v1/index.json", "streams/v1/index.sjson", "streams/v1/c.json", "meta/x/y.json"}
	for _, s := range []string{".ssmirror/lock", ".ssmirror", "streams", "streams/v1/a", "meta/x", "meta/xy", "a/b", ".SSMIRROR/LOCK"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if p == "" {
			return
		}
		lp := strings.ToLower(p)
		want := strings.HasPrefix(lp, ".ssmirror/") || strings.HasPrefix(lp, "streams/v1/")
		for _, k := range control {
			if lp == k || strings.HasPrefix(k, lp+"/") {
				want = true
			}
		}
		err := CheckControlPaths(Held{VersionKey{"c", "p", "1"}: {"i": {Path: p}}}, control)
		if (err != nil) != want {
			t.Fatalf("%q: refused %v, want %v (%v)", p, err != nil, want, err)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// BenchmarkRefusalChecks is what the two checks add to every run: a selection check and a
// control-path check over 10,000 items.
func BenchmarkRefusalChecks(b *testing.B) {
	var versions []string
	for i := range 625 {
		versions = append(versions, fmt.Sprintf("2025%04d", i))
	}
	up := maasUpstream(versions...)                                  // 10,000 items
	fs, err := streams.ParseFilters([]string{"os~(grub*|pxelinux)"}) // matches only the bootloaders, at the end
	if err != nil {
		b.Fatal(err)
	}
	plan := MakePlan(PlanInput{Upstream: up, Held: Held{}})
	control := []string{LockKey, StateKey, "streams/v1/index.json", "streams/v1/index.sjson", "streams/v1/c.json"}
	b.Logf("%d items, %d held", len(up), plan.Held.Items())
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckSelection(up, fs, nil); err != nil {
			b.Fatal(err)
		}
		if err := CheckControlPaths(plan.Held, control); err != nil {
			b.Fatal(err)
		}
	}
}
