package streams

import (
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func nomatchItems() []Item {
	mk := func(release, arch, ftype string) Item {
		return Item{Attrs: NewAttrs(map[string]string{"os": "ubuntu", "release": release, "arch": arch, "ftype": ftype, "subarch": "ga-22.04"})}
	}
	return []Item{
		mk("jammy", "amd64", "squashfs"), mk("jammy", "amd64", "boot-kernel"),
		mk("jammy", "arm64", "squashfs"), mk("noble", "amd64", "squashfs"),
	}
}

func TestExplainNoMatch(t *testing.T) {
	items := nomatchItems()
	for _, tc := range []struct {
		name    string
		filters []string
		want    string // a regexp the explanation must match ("" : no explanation, something matches)
	}{
		{"matches", []string{"arch=amd64"}, ""},
		{"no filters", nil, ""},
		{"doubled operator", []string{"arch==amd64"},
			`^no item has arch "=amd64"; arch is one of: "amd64", "arm64" \(did you mean arch=amd64\?\)$`},
		{"= then ~", []string{"release=~jam"},
			`no item has release "~jam"; release is one of: "jammy", "noble" \(did you mean release~jam\?\)$`},
		{"typo in value", []string{"arch=amd46"}, `no item has arch "amd46"; .* \(did you mean arch=amd64\?\)$`},
		{"unknown value, nothing near", []string{"release=focal"}, `^no item has release "focal"; release is one of: "jammy", "noble"$`},
		{"unknown key", []string{"arc=amd64"}, `^no item has the key "arc" \(nearest known keys: arch\)$`},
		{"unknown key, case", []string{"Release=jammy"}, `nearest known keys: release\)$`},
		{"unknown key, nothing near", []string{"label=stable"}, `^no item has the key "label"$`},
		{"regex", []string{"release~^(focal|bionic)$"}, `^no release value matches the regex "\^\(focal\|bionic\)\$"; release is one of: "jammy", "noble"$`},
		{"not equal", []string{"os!=ubuntu"}, `^every item has os "ubuntu"; os is one of: "ubuntu"$`},
		{"not regex", []string{"subarch!~ga"}, `^every subarch value matches the regex "ga"`},
		{"together", []string{"arch=arm64", "release=noble"},
			`^arch=arm64 and release=noble match no item together: no item of the 1 that arch=arm64 selects has release "noble"; release is one of: "jammy"$`},
		{"later filter alone", []string{"arch=amd64", "ftype=manifest"}, `^no item has ftype "manifest"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := ParseFilters(tc.filters)
			if err != nil {
				t.Fatal(err)
			}
			got := ExplainNoMatch(items, fs)
			if tc.want == "" {
				if got != "" {
					t.Fatalf("explained a selection that matches: %q", got)
				}
				return
			}
			if !regexp.MustCompile(tc.want).MatchString(got) {
				t.Errorf("got  %q\nwant /%s/", got, tc.want)
			}
		})
	}
	if got := ExplainNoMatch(nil, nil); got != "the catalogue lists no item at all" {
		t.Errorf("empty catalogue: %q", got)
	}
}

func TestNearestWords(t *testing.T) {
	words := []string{"arch", "arches", "release", "release_title", "subarch", "subarches", "ftype", "os"}
	for _, tc := range []struct {
		w    string
		n    int
		want []string
	}{
		{"arc", 3, []string{"arch"}},
		{"archs", 3, []string{"arch", "arches"}},
		{"sub_arch", 3, []string{"subarch"}},
		{"relase", 1, []string{"release"}},
		{"zzzzzz", 3, []string{}},
		{"arch", 3, []string{"arches"}}, // the word itself is not suggested
	} {
		if got := NearestWords(tc.w, words, tc.n); !cmp.Equal(got, tc.want) {
			t.Errorf("NearestWords(%q) = %q, want %q", tc.w, got, tc.want)
		}
	}
	if d := EditDistance("kitten", "sitting"); d != 3 {
		t.Errorf("EditDistance(kitten, sitting) = %d, want 3", d)
	}
}

// BenchmarkExplainNoMatch explains a typo over 100,000 items (the cost of a refused run's
// message; a selection that matches stops at its first match).
func BenchmarkExplainNoMatch(b *testing.B) {
	items := make([]Item, 100_000)
	for i := range items {
		items[i] = Item{Attrs: NewAttrs(map[string]string{
			"os": "ubuntu", "release": []string{"jammy", "noble"}[i%2], "arch": []string{"amd64", "arm64"}[i/2%2],
			"ftype": "squashfs", "subarch": "ga-22.04", "version_name": "20250718", "path": "x", "sha256": "y", "size": "1",
		})}
	}
	fs, err := ParseFilters([]string{"release=noble", "arch==amd64"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ExplainNoMatch(items, fs) == "" {
			b.Fatal("no explanation")
		}
	}
}

// FuzzExplainNoMatch: for any pair of filters, an explanation is given exactly when they
// select nothing, and explaining never panics.
func FuzzExplainNoMatch(f *testing.F) {
	for _, seed := range [][2]string{{"arch==amd64", "release=noble"}, {"arch=amd64", "release=noble"}, {"x~(", "y!~"}, {"arch=arm64", "release=noble"}, {"ftype!=squashfs", "os!~^u"}} {
		f.Add(seed[0], seed[1])
	}
	items := nomatchItems()
	f.Fuzz(func(t *testing.T, a, b string) {
		fs, err := ParseFilters([]string{a, b})
		if err != nil {
			return
		}
		matches := false
		for _, it := range items {
			if fs.MatchAttrs(it.Attrs) {
				matches = true
				break
			}
		}
		if got := ExplainNoMatch(items, fs); (got == "") != matches {
			t.Fatalf("filters %v: matches %v, explanation %q", fs, matches, got)
		}
	})
}
