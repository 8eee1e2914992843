package streams

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestItemsMAAS(t *testing.T) {
	p := mustParseProducts(t, readTestdata(t, "maas-v3.json"))
	items, err := p.Items()
	if err != nil {
		t.Fatal(err)
	}
	const prod = "com.ubuntu.maas.stable:v3:boot:22.04:amd64:ga-22.04"
	if len(items) != 2 || items[0].Name != "boot-kernel" || items[1].Name != "squashfs" {
		t.Fatalf("items = %+v", items)
	}
	k := items[0]
	want := Item{
		ContentID: "com.ubuntu.maas:stable:v3:download",
		Product:   prod,
		Version:   "20250718",
		Name:      "boot-kernel",
		Path:      "jammy/amd64/20250718/ga-22.04/generic/boot-kernel",
		Size:      11708744,
		SHA256:    "54fe42a379c138a86bf12279ed26e5ac2b4c0821823978831ce288c2cd9a121f",
		Attrs: NewAttrs(map[string]string{
			"content_id": "com.ubuntu.maas:stable:v3:download", "datatype": "image-ids",
			"format": "products:1.0", "updated": "Thu, 24 Jul 2025 09:01:42 +0000",
			"arch": "amd64", "kflavor": "generic", "krel": "jammy", "label": "stable", "os": "ubuntu",
			"release": "jammy", "release_codename": "Jammy Jellyfish", "release_title": "22.04 LTS",
			"subarch": "ga-22.04", "subarches": "generic,hwe-p,ga-22.04", "support_eol": "2027-04-21",
			"version": "22.04", "ftype": "boot-kernel", "kpackage": "linux-generic",
			"path":         "jammy/amd64/20250718/ga-22.04/generic/boot-kernel",
			"sha256":       "54fe42a379c138a86bf12279ed26e5ac2b4c0821823978831ce288c2cd9a121f",
			"size":         "11708744",
			"product_name": prod, "version_name": "20250718", "item_name": "boot-kernel",
		}),
	}
	if diff := cmp.Diff(want, k, cmp.Transformer("attrs", Attrs.Map)); diff != "" {
		t.Fatalf("boot-kernel (-want +got):\n%s", diff)
	}
	if items[1].Size != 455462912 || items[1].Path != "jammy/amd64/20250718/squashfs" {
		t.Errorf("squashfs = %+v", items[1])
	}
	if got := k.Key().String(); got != "com.ubuntu.maas:stable:v3:download/"+prod+"/20250718/boot-kernel" {
		t.Errorf("Key = %s", got)
	}
}

func TestItemsCloudImages(t *testing.T) {
	p := mustParseProducts(t, readTestdata(t, "cloud-images.json"))
	items, err := p.Items()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range items {
		names = append(names, it.Product+" "+it.Version+" "+it.Name)
	}
	wantNames := []string{
		"com.ubuntu.cloud:server:22.04:amd64 20250601 manifest",
		"com.ubuntu.cloud:server:22.04:amd64 20250701 disk1.img",
		"com.ubuntu.cloud:server:22.04:amd64 20250701 lxd.tar.xz",
		"com.ubuntu.cloud:server:24.04:arm64 20250701 root.tar.xz",
	}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Fatalf("order (-want +got):\n%s", diff)
	}
	manifest, disk, lxd, root := items[0], items[1], items[2], items[3]

	// No path: no content, no size.
	if manifest.Path != "" || manifest.Size != 0 || manifest.Attrs.Map()["note"] != "no content here" {
		t.Errorf("manifest = %+v", manifest)
	}
	// Version attributes are inherited; item keys win.
	if disk.Attrs.Map()["pubname"] != "ubuntu-jammy-22.04-amd64-server-20250701" || disk.Attrs.Map()["label"] != "release" {
		t.Errorf("version attrs not inherited: %v", disk.Attrs.Map())
	}
	if _, ok := manifest.Attrs.Map()["pubname"]; ok {
		t.Error("sibling version's attrs leaked")
	}
	// Checksums lowercased; string sizes accepted; size 0 valid.
	if disk.SHA256 != strings.Repeat("a", 64) || disk.MD5 != "0123456789abcdef0123456789abcdef" || disk.Size != 123 {
		t.Errorf("disk = %+v", disk)
	}
	if lxd.Size != 0 || lxd.Path == "" {
		t.Errorf("lxd = %+v", lxd)
	}
	if root.SHA512 != strings.Repeat("d", 128) || root.SHA256 != "" || root.Size != 42 {
		t.Errorf("root = %+v", root)
	}
	// Top-level scalars (numbers as spelled) are inherited; null, arrays and objects are not.
	for k, want := range map[string]string{"ratio": "1.0e3", "big": "12345678901234567890", "neg": "-0.5E-7",
		"note": "café <b> & \"quoted\" \\ tab\t", "datatype": "image-downloads"} {
		if got, ok := disk.Attrs.Map()[k]; !ok || got != want {
			t.Errorf("Attrs[%q] = %q, %v; want %q", k, got, ok, want)
		}
	}
	for _, k := range []string{"nothing", "tags", "_aliases", "extra", "versions", "items", "products"} {
		if _, ok := lxd.Attrs.Map()[k]; ok {
			t.Errorf("non-scalar %q in Attrs", k)
		}
	}
	if lxd.Attrs.Map()["combined_sha256"] == "" {
		t.Error("unknown item key missing")
	}
	// _aliases: crsn=jammy adds version and release_title; release and supported were written
	// in the product, so they win; arch=amd64 adds arch_title with its escape decoded.
	for k, want := range map[string]string{"version": "22.04", "release_title": "22.04 LTS",
		"release": "jammy-explicit", "supported": "false", "arch_title": "x86-64",
		"endpoint": "https://arch.example/amd64"} {
		if got := disk.Attrs.Map()[k]; got != want {
			t.Errorf("disk Attrs[%q] = %q, want %q", k, got, want)
		}
	}
	// crsn=noble on the other product; no alias for arm64.
	if root.Attrs.Map()["release"] != "noble" || root.Attrs.Map()["version"] != "24.04" {
		t.Errorf("noble aliases: %v", root.Attrs.Map())
	}
	if _, ok := root.Attrs.Map()["arch_title"]; ok {
		t.Error("amd64 alias applied to arm64")
	}
	if err := CheckConsistent(items); err != nil {
		t.Fatal(err)
	}
}

func TestItemsAliasPrecedence(t *testing.T) {
	doc := `{"format":"products:1.0","content_id":"c","os":"top",
	 "_aliases":{"a":{"1":{"k":"from-a","os":"alias"}},"b":{"2":{"k":"from-b","a":"9","m":"from-b"}}},
	 "products":{"p":{"versions":{"v":{"items":{"i":{"a":"1","b":"2"}}}}}}}`
	items, err := mustParseProducts(t, []byte(doc)).Items()
	if err != nil {
		t.Fatal(err)
	}
	got := items[0].Attrs.Map()
	// First alias by attr name wins over later ones; an alias value never triggers another
	// alias; an explicit key at any level (here the document's os) wins over aliases.
	want := map[string]string{"k": "from-a", "m": "from-b", "a": "1", "os": "top"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Attrs[%q] = %q, want %q", k, got[k], v)
		}
	}
}

func TestItemsInheritanceLevels(t *testing.T) {
	doc := `{"format":"products:1.0","content_id":"c","x":"top","y":"top","z":"top","w":"top",
	 "item_name":"not-synthetic",
	 "products":{"p":{"x":"prod","y":"prod","z":"prod",
	   "versions":{"v":{"x":"ver","y":"ver","items":{"i":{"x":"item","flag":true,"n":1.5e2,"o":{"a":1}}}}}}}}`
	items, err := mustParseProducts(t, []byte(doc)).Items()
	if err != nil {
		t.Fatal(err)
	}
	a := items[0].Attrs.Map()
	for k, want := range map[string]string{"x": "item", "y": "ver", "z": "prod", "w": "top",
		"flag": "true", "n": "1.5e2", "item_name": "i", "product_name": "p", "version_name": "v", "content_id": "c"} {
		if a[k] != want {
			t.Errorf("Attrs[%q] = %q, want %q", k, a[k], want)
		}
	}
	if _, ok := a["o"]; ok {
		t.Error("object inherited")
	}
}

func TestItemsErrors(t *testing.T) {
	item := func(body string) string {
		return `{"format":"products:1.0","content_id":"c","products":{"p":{"versions":{"v":{"items":{"i":` + body + `}}}}}}`
	}
	sha := strings.Repeat("a", 64)
	tests := []struct{ name, doc, want string }{
		{"no size", item(`{"path":"a/b"}`), "no size"},
		{"negative size", item(`{"path":"a/b","size":-1}`), "not a non-negative integer"},
		{"float size", item(`{"path":"a/b","size":1.5}`), "not a non-negative integer"},
		{"exp size", item(`{"path":"a/b","size":1e3}`), "not a non-negative integer"},
		{"string size junk", item(`{"path":"a/b","size":"12a"}`), "not a non-negative integer"},
		{"bool size", item(`{"path":"a/b","size":true}`), "not a non-negative integer"},
		{"huge size", item(`{"path":"a/b","size":12345678901234567890}`), "out of range"},
		{"null size", item(`{"path":"a/b","size":null}`), "no size"},
		{"dotdot", item(`{"path":"a/../../etc/passwd","size":1}`), `".." segment`},
		{"absolute", item(`{"path":"/etc/passwd","size":1}`), "absolute"},
		{"backslash", item(`{"path":"a\\b","size":1}`), "backslash"},
		{"nul", item(`{"path":"a\u0000b","size":1}`), "control character"},
		{"empty path", item(`{"path":"","size":1}`), "empty path"},
		{"short sha", item(`{"path":"a","size":1,"sha256":"abc"}`), "sha256"},
		{"non-hex sha", item(`{"path":"a","size":1,"sha256":"` + strings.Repeat("g", 64) + `"}`), "not 64 hex digits"},
		{"bad md5", item(`{"path":"a","size":1,"sha256":"` + sha + `","md5":"` + sha + `"}`), "md5"},
		{"bad sha512", item(`{"path":"a","size":1,"sha512":"` + sha + `"}`), "sha512"},
		{"inherited bad path", `{"format":"products:1.0","path":"../x","size":1,"products":{"p":{"versions":{"v":{"items":{"i":{}}}}}}}`, `".." segment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mustParseProducts(t, []byte(tt.doc)).Items()
			if err == nil {
				t.Fatal("Items succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `product "p" version "v" item "i"`) {
				t.Fatalf("error %q lacks %q or the item's name", err, tt.want)
			}
		})
	}
	// Without a path a malformed size is tolerated.
	if _, err := mustParseProducts(t, []byte(item(`{"size":"n/a"}`))).Items(); err != nil {
		t.Fatalf("size without path: %v", err)
	}
}

func TestCheckConsistent(t *testing.T) {
	mk := func(prod, path string, size int64, sha string) Item {
		return Item{ContentID: "c", Product: prod, Version: "v", Name: "i", Path: path, Size: size, SHA256: sha}
	}
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	tests := []struct {
		name  string
		items []Item
		want  string // "" = consistent
	}{
		{"empty", nil, ""},
		{"shared same", []Item{mk("p1", "x", 1, a), mk("p2", "x", 1, a)}, ""},
		{"one checksum missing", []Item{mk("p1", "x", 1, a), mk("p2", "x", 1, "")}, ""},
		{"no path", []Item{mk("p1", "", 1, a), mk("p2", "", 2, b)}, ""},
		{"size differs", []Item{mk("p1", "x", 1, a), mk("p2", "y", 5, b), mk("p3", "x", 2, a)}, `path "x" is listed with size 1 and 2 by c/p1/v/i and c/p3/v/i`},
		{"sha differs", []Item{mk("p1", "x", 1, a), mk("p2", "x", 1, b)}, "sha256 " + a + " and " + b},
		{"md5 differs", []Item{{Product: "p1", Path: "x", MD5: a[:32]}, {Product: "p2", Path: "x", MD5: b[:32]}}, "md5"},
		{"sha512 differs", []Item{{Product: "p1", Path: "x", SHA512: a + a}, {Product: "p2", Path: "x", SHA512: b + b}}, "sha512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckConsistent(tt.items)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// referenceAttrs computes an item's effective attributes the plain way, one map per item, as
// Items did before Attrs shared layers: the rules of the Items doc comment, written directly.
func referenceAttrs(p *Products, product, version, item string) map[string]string {
	m := map[string]string{}
	prod := p.Products[product]
	v := prod.Versions[version]
	var own map[string]json.RawMessage
	if e := v.Items[item]; e != nil {
		own = e.Attrs
	}
	for _, level := range []map[string]json.RawMessage{p.Attrs, prod.Attrs, v.Attrs, own} {
		for k, raw := range level {
			if s, ok := scalar(raw); ok {
				m[k] = s
			}
		}
	}
	m["content_id"], m["product_name"], m["version_name"], m["item_name"] = p.ContentID(), product, version, item
	aliases := parseAliases(p.Attrs["_aliases"])
	var adds []kv
	for _, attr := range aliases.attrs {
		if val, ok := m[attr]; ok {
			adds = append(adds, aliases.values[attr][val]...)
		}
	}
	for _, e := range adds {
		if _, ok := m[e.k]; !ok {
			m[e.k] = e.v
		}
	}
	return m
}

// checkAttrs compares it.Attrs with referenceAttrs, through Map, Get and Len.
func checkAttrs(t *testing.T, p *Products, it Item) {
	t.Helper()
	want := referenceAttrs(p, it.Product, it.Version, it.Name)
	if diff := cmp.Diff(want, it.Attrs.Map()); diff != "" {
		t.Fatalf("%s: attributes (-reference +Attrs):\n%s", it.Key(), diff)
	}
	for k, v := range want {
		if got, ok := it.Attrs.Get(k); !ok || got != v {
			t.Fatalf("%s: Get(%q) = %q, %v; want %q", it.Key(), k, got, ok, v)
		}
	}
	if _, ok := it.Attrs.Get("no such attribute"); ok {
		t.Fatalf("%s: Get found an absent key", it.Key())
	}
	if it.Attrs.Len() != len(want) {
		t.Fatalf("%s: Len %d, want %d", it.Key(), it.Attrs.Len(), len(want))
	}
}

// TestAttrsMatchReference: every item of the fixtures and of a document built to exercise
// overriding (an item's own product_name, an alias key also written at a higher level, two
// aliases adding one key) gets the attributes the plain computation gives.
func TestAttrsMatchReference(t *testing.T) {
	docs := map[string][]byte{"crafted": []byte(`{"format": "products:1.0", "content_id": "c",
	  "arch": "top", "os": "ubuntu", "label": "top-label",
	  "_aliases": {"release": {"noble": {"version": "24.04", "label": "alias-label", "zz": "r"}},
	               "arch": {"amd64": {"zz": "a", "arch_title": "x86"}}},
	  "products": {"p1": {"release": "noble", "arch": "amd64", "n": 1, "b": true, "nil": null,
	    "versions": {"v1": {"version": "from-version", "obj": {"a": 1},
	      "items": {"i1": {"product_name": "own", "item_name": "own", "ftype": "x", "path": "a/b", "size": 3},
	                "i2": {"arch": "arm64", "a": "1", "b2": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9"}}}}}}}`)}
	docs["cloud-images.json"] = readTestdata(t, "cloud-images.json")
	docs["maas-v3.json"] = readTestdata(t, "maas-v3.json")
	for _, name := range []string{"../testdata/stream/streams/v1"} {
		entries, err := os.ReadDir(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".json") && e.Name() != "index.json" {
				data, err := os.ReadFile(filepath.Join(name, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				docs[e.Name()] = data
			}
		}
	}
	checked := 0
	for name, data := range docs {
		p, err := ParseProducts(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		items, err := p.Items()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, it := range items {
			checkAttrs(t, p, it)
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d items checked", checked)
	}
}
