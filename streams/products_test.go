package streams

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParseProducts(t testing.TB, data []byte) *Products {
	t.Helper()
	p, err := ParseProducts(data)
	if err != nil {
		t.Fatalf("ParseProducts: %v", err)
	}
	return p
}

// roundTrip checks Parse(Marshal(p)) == p and that Marshal is a fixed point.
func roundTrip(t *testing.T, p *Products) []byte {
	t.Helper()
	out, err := p.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	q := mustParseProducts(t, out)
	if diff := cmp.Diff(p, q); diff != "" {
		t.Fatalf("Parse(Marshal(p)) differs (-p +q):\n%s", diff)
	}
	out2, err := q.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(out2) {
		t.Fatalf("Marshal not stable:\n%s\n---\n%s", out, out2)
	}
	return out
}

// semanticEqual compares two JSON texts as python would (numbers compared by spelling through
// json.Number, so no float rounding hides a change).
func semanticEqual(t *testing.T, a, b []byte) {
	t.Helper()
	decode := func(data []byte) any {
		d := json.NewDecoder(strings.NewReader(string(data)))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if diff := cmp.Diff(decode(a), decode(b)); diff != "" {
		t.Fatalf("documents differ (-a +b):\n%s", diff)
	}
}

func TestParseProductsMAAS(t *testing.T) {
	data := readTestdata(t, "maas-v3.json")
	p := mustParseProducts(t, data)
	if got, want := p.ContentID(), "com.ubuntu.maas:stable:v3:download"; got != want {
		t.Errorf("ContentID = %q, want %q", got, want)
	}
	prod := p.Products["com.ubuntu.maas.stable:v3:boot:22.04:amd64:ga-22.04"]
	if prod == nil {
		t.Fatal("product missing")
	}
	if got := string(prod.Attrs["release_codename"]); got != `"Jammy Jellyfish"` {
		t.Errorf("release_codename raw = %s", got)
	}
	if _, ok := prod.Attrs["versions"]; ok {
		t.Error("versions kept in Attrs")
	}
	it := prod.Versions["20250718"].Items["squashfs"]
	if got := string(it.Attrs["size"]); got != "455462912" {
		t.Errorf("size raw = %s", got)
	}
	out := roundTrip(t, p)
	semanticEqual(t, data, out)
	if !strings.HasPrefix(string(out), "{\n \"content_id\": \"com.ubuntu.maas:stable:v3:download\",\n \"datatype\"") {
		t.Errorf("unexpected layout:\n%.200s", out)
	}
	if !strings.HasSuffix(string(out), "}\n") {
		t.Error("no trailing newline")
	}
}

func TestParseProductsLossless(t *testing.T) {
	data := readTestdata(t, "cloud-images.json")
	p := mustParseProducts(t, data)
	out := roundTrip(t, p)
	semanticEqual(t, data, out)
	s := string(out)
	for _, want := range []string{
		`"ratio": 1.0e3,`,
		`"big": 12345678901234567890,`,
		`"neg": -0.5E-7,`,
		`"nothing": null,`,
		`"note": "caf\u00e9 <b> & \"quoted\" \\ tab\t"`, // spelling kept, no HTML escaping
		"\"nested\": [\n",
		"2.50,",
		"3e10\n",
		`"endpoint": "https://\u0061rch.example/amd64"`,
		`"ignored": "not an object"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	// Sorted keys at every level, nested unknown values included.
	if i, j := strings.Index(s, `"y": [`), strings.Index(s, `"z": 1`); i < 0 || j < 0 || i > j {
		t.Errorf("nested keys not sorted:\n%s", s)
	}
	if i, j := strings.Index(s, `"arch": {`), strings.Index(s, `"crsn": {`); i < 0 || j < 0 || i > j {
		t.Errorf("_aliases keys not sorted")
	}
	// Canonical raw: nested objects compact and sorted.
	if got, want := string(p.Attrs["tags"]), `["b","a",{"y":[true,false,null],"z":1}]`; got != want {
		t.Errorf("tags raw = %s, want %s", got, want)
	}
}

func TestParseProductsDoesNotAlias(t *testing.T) {
	data := readTestdata(t, "maas-v3.json")
	p := mustParseProducts(t, data)
	before, _ := p.Marshal()
	for i := range data {
		data[i] = ' '
	}
	after, _ := p.Marshal()
	if string(before) != string(after) {
		t.Fatal("Products changed when the input buffer was overwritten")
	}
}

func TestParseProductsErrors(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	okDeep := strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1)
	const head = `{"format":"products:1.0",`
	tests := []struct {
		name, doc, want string
	}{
		{"empty", ``, "expected an object"},
		{"not object", `[]`, "expected an object"},
		{"no format", `{"products":{}}`, "no format"},
		{"wrong format", `{"format":"index:1.0","products":{}}`, "want products:1.0"},
		{"format not string", `{"format":1,"products":{}}`, "want products:1.0"},
		{"dup top", `{"format":"products:1.0","format":"products:1.0"}`, `duplicate key "format"`},
		{"dup escaped", head + `"a":1,"\u0061":2}`, `duplicate key "a"`},
		{"dup product", head + `"products":{"p":{},"p":{}}}`, `duplicate key "p"`},
		{"dup item key", head + `"products":{"p":{"versions":{"v":{"items":{"i":{"size":1,"size":2}}}}}}}`, `duplicate key "size"`},
		{"dup nested unknown", head + `"x":[{"k":1,"k":1}]}`, `duplicate key "k"`},
		{"dup in big object", head + `"x":{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"a3":3}}`, `duplicate key "a3"`},
		{"invalid utf8", head + "\"x\":\"\xff\"}", "invalid UTF-8"},
		{"invalid utf8 key", head + "\"\xc3\":1}", "invalid UTF-8"},
		{"too deep", head + `"x":` + deep + `}`, "nesting deeper"},
		{"trailing", head + `"products":{}} {}`, "after the top-level value"},
		{"trailing comma", head + `"products":{},}`, "expected a string"},
		{"products not object", head + `"products":[]}`, "expected an object"},
		{"versions not object", head + `"products":{"p":{"versions":1}}}`, `product "p"`},
		{"items not object", head + `"products":{"p":{"versions":{"v":{"items":"x"}}}}}`, `version "v"`},
		{"item not object", head + `"products":{"p":{"versions":{"v":{"items":{"i":[]}}}}}}`, `item "i"`},
		{"bad number", head + `"x":01}`, "expected ',' or '}'"},
		{"bad number2", head + `"x":1.}`, "malformed number"},
		{"bad number3", head + `"x":-}`, "malformed number"},
		{"bad exp", head + `"x":1e}`, "malformed number"},
		{"bad literal", head + `"x":nul}`, "unexpected character"},
		{"control char", head + "\"x\":\"a\nb\"}", "control character"},
		{"bad escape", head + `"x":"\x"}`, "bad escape"},
		{"bad unicode escape", head + `"x":"\u12g4"}`, "bad \\u escape"},
		{"unterminated", head + `"x":"abc`, "unterminated string"},
		{"missing colon", head + `"x" 1}`, "expected ':'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProducts([]byte(tt.doc))
			if err == nil {
				t.Fatalf("ParseProducts(%q) succeeded", tt.doc)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	if _, err := ParseProducts([]byte(head + `"x":` + okDeep + `}`)); err != nil {
		t.Errorf("nesting at the limit rejected: %v", err)
	}
}

func TestMarshalRejectsBadRaw(t *testing.T) {
	p := mustParseProducts(t, readTestdata(t, "maas-v3.json"))
	p.Attrs["broken"] = json.RawMessage(`{"a":`)
	if _, err := p.Marshal(); err == nil || !strings.Contains(err.Error(), `"broken"`) {
		t.Fatalf("Marshal with a broken raw value: err = %v", err)
	}
	p.Attrs["broken"] = json.RawMessage(``)
	if _, err := p.Marshal(); err == nil {
		t.Fatal("Marshal with an empty raw value succeeded")
	}
}

func TestMarshalCanonicalisesHandBuiltValues(t *testing.T) {
	p := &Products{Attrs: map[string]json.RawMessage{
		"format":   json.RawMessage(`"products:1.0"`),
		"obj":      json.RawMessage(` { "b" : 1 , "a" : [ ] , "c": {} } `),
		"products": json.RawMessage(`"ignored"`),
	}, Products: map[string]*Product{"p": nil}}
	out, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n \"format\": \"products:1.0\",\n \"obj\": {\n  \"a\": [],\n  \"b\": 1,\n  \"c\": {}\n },\n" +
		" \"products\": {\n  \"p\": {\n   \"versions\": {}\n  }\n }\n}\n"
	if string(out) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", out, want)
	}
}

func TestPruneAndClone(t *testing.T) {
	p := mustParseProducts(t, readTestdata(t, "cloud-images.json"))
	before, _ := p.Marshal()

	c := p.Clone()
	if diff := cmp.Diff(p, c); diff != "" {
		t.Fatalf("Clone differs:\n%s", diff)
	}

	q := p.Prune(func(prod, ver, item string) bool {
		return prod == "com.ubuntu.cloud:server:22.04:amd64" && item == "disk1.img"
	})
	if len(q.Products) != 1 {
		t.Fatalf("products after prune: %v", keysOf(q.Products))
	}
	prod := q.Products["com.ubuntu.cloud:server:22.04:amd64"]
	if len(prod.Versions) != 1 || prod.Versions["20250701"] == nil {
		t.Fatalf("versions after prune: %v", keysOf(prod.Versions))
	}
	if items := keysOf(prod.Versions["20250701"].Items); len(items) != 1 || items[0] != "disk1.img" {
		t.Fatalf("items after prune: %v", items)
	}
	if string(prod.Attrs["crsn"]) != `"jammy"` || string(prod.Versions["20250701"].Attrs["pubname"]) == "" {
		t.Error("attributes lost by Prune")
	}
	if string(q.Attrs["_aliases"]) != string(p.Attrs["_aliases"]) || string(q.Attrs["big"]) != "12345678901234567890" {
		t.Error("document attributes lost by Prune")
	}
	// Deep copy: changing the copy leaves the original alone.
	prod.Attrs["new"] = json.RawMessage(`1`)
	delete(prod.Versions["20250701"].Items, "disk1.img")
	q.Attrs["content_id"] = json.RawMessage(`"other"`)
	c.Products["com.ubuntu.cloud:server:24.04:arm64"].Versions["20250701"].Items["root.tar.xz"].Attrs["size"] = json.RawMessage(`7`)
	after, _ := p.Marshal()
	if string(before) != string(after) {
		t.Fatal("Prune/Clone copies share maps with the original")
	}
	roundTrip(t, q)

	none := p.Prune(func(string, string, string) bool { return false })
	if len(none.Products) != 0 || none.ContentID() != p.ContentID() {
		t.Fatalf("prune of everything: %d products, content id %q", len(none.Products), none.ContentID())
	}
	roundTrip(t, none)
}

func TestMarshalQuotesKeys(t *testing.T) {
	doc := `{"format":"products:1.0","products":{"a\u0001\n\r\t\"\\b\u00e9\u2028":{"versions":{}}}}`
	p := mustParseProducts(t, []byte(doc))
	out := roundTrip(t, p)
	if !strings.Contains(string(out), `"a\u0001\n\r\t\"\\bé`+"\u2028"+`"`) {
		t.Errorf("key written as:\n%s", out)
	}
	// A key built in Go with invalid UTF-8 is written with U+FFFD, so the output still parses.
	p.Products["x\xffy"] = &Product{}
	out, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q := mustParseProducts(t, out)
	if q.Products["x\uFFFDy"] == nil {
		t.Errorf("products: %v", keysOf(q.Products))
	}
}
