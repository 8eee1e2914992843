package streams

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseIndex(t *testing.T) {
	data := readTestdata(t, "index.json")
	ix, err := ParseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Format != "index:1.0" || ix.Updated != "Thu, 24 Jul 2025 08:01:49 +0000" || len(ix.Index) != 2 {
		t.Fatalf("index = %+v", ix)
	}
	e := ix.Index["com.ubuntu.maas:stable:v3:download"]
	want := &IndexEntry{
		Path:     "streams/v1/com.ubuntu.maas:stable:v3:download.json",
		Format:   "products:1.0",
		Datatype: "image-ids",
		Updated:  "Thu, 24 Jul 2025 08:01:42 +0000",
		Products: []string{"com.ubuntu.maas.stable:v3:boot:22.04:amd64:ga-22.04"},
		Extra: map[string]json.RawMessage{
			"clouds":    json.RawMessage(`[{"endpoint":"https://example.com","region":"r1"}]`),
			"cloudname": json.RawMessage(`"maas"`),
			"size":      json.RawMessage(`1.50e2`),
		},
	}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("entry (-want +got):\n%s", diff)
	}
	if string(ix.Extra["mirror-note"]) != "12345678901234567890" {
		t.Errorf("Extra = %v", ix.Extra)
	}

	out, err := ix.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	semanticEqual(t, data, out)
	ix2, err := ParseIndex(out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ix, ix2); diff != "" {
		t.Fatalf("Parse(Marshal(ix)) differs:\n%s", diff)
	}
	// The fixture is already in the canonical layout, clouds aside (written compact there).
	if !strings.Contains(string(out), "\"clouds\": [\n    {\n     \"endpoint\": \"https://example.com\",") {
		t.Errorf("layout:\n%s", out)
	}
}

func TestIndexMarshalOmitsEmpty(t *testing.T) {
	ix := &Index{Format: FormatIndex, Index: map[string]*IndexEntry{
		"a": {Path: "streams/v1/a.json", Products: []string{}},
		"b": {Path: "streams/v1/b.json"},
	}}
	out, err := ix.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n \"format\": \"index:1.0\",\n \"index\": {\n  \"a\": {\n   \"path\": \"streams/v1/a.json\",\n   \"products\": []\n  },\n" +
		"  \"b\": {\n   \"path\": \"streams/v1/b.json\"\n  }\n }\n}\n"
	if string(out) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", out, want)
	}
	if _, err := (&Index{Format: FormatIndex, Index: map[string]*IndexEntry{"x": nil}}).Marshal(); err == nil {
		t.Error("nil entry accepted")
	}
}

func TestParseIndexErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"products format", `{"format":"products:1.0","index":{}}`, `format "products:1.0", want index:1.0`},
		{"no format", `{"index":{}}`, `format "", want index:1.0`},
		{"format number", `{"format":1}`, `"format" is not a string`},
		{"path number", `{"format":"index:1.0","index":{"a":{"path":1}}}`, `index entry "a"`},
		{"products strings", `{"format":"index:1.0","index":{"a":{"products":[1]}}}`, `"products" is not a string`},
		{"products object", `{"format":"index:1.0","index":{"a":{"products":{}}}}`, "expected an array"},
		{"index array", `{"format":"index:1.0","index":[]}`, "expected an object"},
		{"dup entry", `{"format":"index:1.0","index":{"a":{},"a":{}}}`, `duplicate key "a"`},
		{"dup field", `{"format":"index:1.0","updated":"x","updated":"y"}`, `duplicate key "updated"`},
		{"utf8", "{\"format\":\"index:1.0\",\"x\":\"\xed\xa0\x80\"}", "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseIndex([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestIndexMarshalRejectsBadExtra(t *testing.T) {
	ix := &Index{Format: FormatIndex, Extra: map[string]json.RawMessage{"x": json.RawMessage(`[1,`)}}
	if _, err := ix.Marshal(); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("err = %v", err)
	}
	ix = &Index{Format: FormatIndex, Index: map[string]*IndexEntry{"e": {Extra: map[string]json.RawMessage{"y": json.RawMessage("\"\xff\"")}}}}
	if _, err := ix.Marshal(); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("err = %v", err)
	}
}
