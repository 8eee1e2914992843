package streams

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// genProducts writes a MAAS-shaped products document with products × versions × 4 items, laid
// out as Marshal writes it. The squashfs and manifest paths are shared by the kernel flavours of
// one release, as in the real stream.
func genProducts(products, versions int) []byte {
	var b strings.Builder
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	releases := []string{"focal", "jammy", "noble", "oracular"}
	flavours := 0
	if products > 0 {
		flavours = (products + len(releases) - 1) / len(releases)
	}
	b.WriteString("{\n \"content_id\": \"com.ubuntu.maas:stable:v3:download\",\n \"datatype\": \"image-ids\",\n" +
		" \"format\": \"products:1.0\",\n \"products\": {")
	for p := range products {
		rel := releases[p/flavours] // products in sorted order
		flav := fmt.Sprintf("hwe-%03d", p%flavours)
		if p > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "\n  \"com.ubuntu.maas.stable:v3:boot:%s:amd64:%s\": {\n", rel, flav)
		fmt.Fprintf(&b, "   \"arch\": \"amd64\",\n   \"kflavor\": \"generic\",\n   \"krel\": %q,\n   \"label\": \"stable\",\n"+
			"   \"os\": \"ubuntu\",\n   \"release\": %q,\n   \"release_title\": \"%s LTS\",\n   \"subarch\": %q,\n"+
			"   \"subarches\": \"generic,hwe-p,%s\",\n   \"support_eol\": \"2030-04-21\",\n   \"version\": \"%d\",\n   \"versions\": {",
			rel, rel, rel, flav, flav, flavours)
		for v := range versions {
			ver := fmt.Sprintf("2025%04d", v)
			if v > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "\n    %q: {\n     \"items\": {", ver)
			for i, name := range []string{"boot-initrd", "boot-kernel", "manifest", "squashfs"} {
				path := fmt.Sprintf("%s/amd64/%s/%s/generic/%s", rel, ver, flav, name)
				if name == "manifest" || name == "squashfs" {
					path = fmt.Sprintf("%s/amd64/%s/%s", rel, ver, name)
				}
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "\n      %q: {\n       \"ftype\": %q,\n       \"kpackage\": \"linux-generic\",\n"+
					"       \"path\": %q,\n       \"sha256\": %q,\n       \"size\": %d\n      }",
					name, name, path, sum(path), 1000+len(path)*12345)
			}
			b.WriteString("\n     }\n    }")
		}
		b.WriteString("\n   }\n  }")
	}
	b.WriteString("\n },\n \"updated\": \"Thu, 24 Jul 2025 09:01:42 +0000\"\n}\n")
	return []byte(b.String())
}

func TestGeneratedDocument(t *testing.T) {
	data := genProducts(12, 3)
	p := mustParseProducts(t, data)
	out := roundTrip(t, p)
	if string(out) != string(data) {
		t.Fatal("generated document is not in Marshal's layout")
	}
	items, err := p.Items()
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 12*3*4 {
		t.Fatalf("%d items", len(items))
	}
	if err := CheckConsistent(items); err != nil {
		t.Fatal(err)
	}
	paths := map[string]int{}
	for _, it := range items {
		paths[it.Path]++
	}
	if n := paths["jammy/amd64/20250000/squashfs"]; n != 3 {
		t.Fatalf("shared squashfs listed %d times", n)
	}
}

var (
	bigOnce sync.Once
	bigDoc  []byte
)

// big100k is a generated document with 100,000 items (1,000 products × 25 versions × 4).
func big100k(b *testing.B) []byte {
	bigOnce.Do(func() { bigDoc = genProducts(1000, 25) })
	return bigDoc
}

func BenchmarkParseProducts(b *testing.B) {
	data := big100k(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseProducts(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkItems(b *testing.B) {
	p, err := ParseProducts(big100k(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		items, err := p.Items()
		if err != nil {
			b.Fatal(err)
		}
		if len(items) != 100000 {
			b.Fatalf("%d items", len(items))
		}
	}
}

func BenchmarkMarshalProducts(b *testing.B) {
	data := big100k(b)
	p, err := ParseProducts(data)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
