package streams

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// addFileSeeds adds the committed documents under testdata as seeds.
func addFileSeeds(f *testing.F, names ...string) {
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// decodeLoose decodes JSON with encoding/json, numbers as json.Number, for semantic comparison.
func decodeLoose(t *testing.T, data []byte) any {
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("encoding/json rejects %q: %v", data, err)
	}
	return v
}

// withChildMaps adds the empty "products", "versions" and "items" objects Marshal writes where a
// parsed document had none.
func withChildMaps(doc any) any {
	fill := func(obj any, child string) map[string]any {
		m := obj.(map[string]any)
		if _, ok := m[child]; !ok {
			m[child] = map[string]any{}
		}
		return m[child].(map[string]any)
	}
	for _, prod := range fill(doc, "products") {
		for _, ver := range fill(prod, "versions") {
			fill(ver, "items")
		}
	}
	return doc
}

func FuzzParseProducts(f *testing.F) {
	addFileSeeds(f, "maas-v3.json", "cloud-images.json")
	f.Add([]byte(`{"format":"products:1.0","products":{}}`))
	f.Add([]byte(`{"format":"products:1.0","x":[1,{"b":2,"a":1e-3}],"products":{"p":{"versions":{"v":{"items":{"i":{"path":"a/b","size":"7"}}}}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProducts(data)
		if err != nil {
			return
		}
		// Nothing the standard library would reject gets through.
		if !json.Valid(data) || !utf8.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed document: %v", err)
		}
		q, err := ParseProducts(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("Parse(Marshal(p)) != p for %q", data)
		}
		out2, err := q.Marshal()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("Marshal not stable: %v", err)
		}
		// Same meaning as the input (encoding/json as the referee; no duplicate keys here).
		if !reflect.DeepEqual(withChildMaps(decodeLoose(t, data)), decodeLoose(t, out)) {
			t.Fatalf("meaning changed:\n%s\n---\n%s", data, out)
		}
		items, err := p.Items()
		if err != nil {
			return
		}
		for _, it := range items {
			checkAttrs(t, p, it)
			if it.Path != "" {
				if ValidPath(it.Path) != nil || it.Size < 0 {
					t.Fatalf("item %+v has a bad path or size", it)
				}
				checkContained(t, it.Path)
			}
		}
		_ = CheckConsistent(items)
		pruned := p.Prune(func(_, _, item string) bool { return len(item)%2 == 0 })
		if _, err := pruned.Marshal(); err != nil {
			t.Fatalf("Marshal of pruned document: %v", err)
		}
	})
}

func FuzzParseIndex(f *testing.F) {
	addFileSeeds(f, "index.json")
	f.Add([]byte(`{"format":"index:1.0","index":{"a":{"products":[]}}}`))
	f.Add([]byte(`{"format":"index:1.0","index":{},"x":{"\u00e9":[null,true]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := ParseIndex(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		out, err := ix.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		ix2, err := ParseIndex(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if !reflect.DeepEqual(ix, ix2) {
			t.Fatalf("Parse(Marshal(ix)) != ix for %q", data)
		}
		out2, err := ix2.Marshal()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("Marshal not stable: %v", err)
		}
	})
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"arch=amd64", "release~(bionic|focal)", "os!~^grub", "a!=b", "a==", "k~(", "=x", "a.b:c-d_e!~x~y=z"} {
		f.Add(s, "amd64")
	}
	f.Fuzz(func(t *testing.T, s, value string) {
		flt, err := ParseFilter(s)
		if err != nil {
			return
		}
		if flt.String() != s {
			t.Fatalf("String() = %q, input %q", flt.String(), s)
		}
		again, err := ParseFilter(flt.String())
		if err != nil || again != flt {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
		if flt.Key == "" || strings.ContainsAny(flt.Key, "=~! ") {
			t.Fatalf("bad key %q", flt.Key)
		}
		attrs := map[string]string{flt.Key: value}
		m := flt.Match(attrs)
		// The negated operator gives the opposite answer.
		neg := Filter{Key: flt.Key, Value: flt.Value}
		switch flt.Op {
		case "=":
			neg.Op = "!="
		case "!=":
			neg.Op = "="
		case "~":
			neg.Op = "!~"
		case "!~":
			neg.Op = "~"
		default:
			t.Fatalf("op %q", flt.Op)
		}
		if neg.Match(attrs) == m {
			t.Fatalf("%s and %s agree on %q", flt, neg, value)
		}
		if flt.Match(nil) != flt.Match(map[string]string{flt.Key: ""}) {
			t.Fatalf("missing key does not compare as empty for %s", flt)
		}
	})
}

func FuzzValidPath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a/../b", "/abs", "a\\b", "a\x00", "...", "x/.", "a//b", "ü/ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		checkContained(t, p)
		if ValidPath(p) == nil {
			for _, seg := range strings.Split(p, "/") {
				if seg == ".." || seg == "." || seg == "" {
					t.Fatalf("accepted %q", p)
				}
			}
		}
	})
}
