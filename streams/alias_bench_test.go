package streams

import (
	"fmt"
	"strings"
	"testing"
)

// genAliasDoc writes a products document whose _aliases grow with n, in the two shapes that
// made expansion quadratic:
//   - "attrs": n items, n alias attributes (attr_i: {"v": {…two keys…}}), item i carrying
//     attr_i = "v": every item was checked against every alias attribute (n × n).
//   - "set": 16 items all carrying one attribute whose alias adds n keys: each added key was
//     checked against every key added before it (16 × n × n).
func genAliasDoc(shape string, n int) []byte {
	var b strings.Builder
	b.WriteString(`{"format":"products:1.0","content_id":"c","_aliases":{`)
	items := n
	switch shape {
	case "attrs":
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"attr_%06d":{"v":{"x_%06d":"1","y_%06d":"2"}}`, i, i, i)
		}
	case "set":
		items = 16
		b.WriteString(`"flavour":{"big":{`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k_%06d":"%d"`, i, i)
		}
		b.WriteString(`}}`)
	}
	b.WriteString(`},"products":{"p":{"versions":{"1":{"items":{`)
	for i := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		switch shape {
		case "attrs":
			fmt.Fprintf(&b, `"i%06d":{"attr_%06d":"v"}`, i, i)
		case "set":
			fmt.Fprintf(&b, `"i%06d":{"flavour":"big"}`, i)
		}
	}
	b.WriteString(`}}}}}}`)
	return []byte(b.String())
}

// BenchmarkAliases times Items on documents whose _aliases grow fourfold: linear expansion
// takes about 4× as long at 4n, quadratic about 16×.
func BenchmarkAliases(b *testing.B) {
	for _, shape := range []string{"attrs", "set"} {
		for _, n := range []int{1000, 4000} {
			doc := genAliasDoc(shape, n)
			p, err := ParseProducts(doc)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/n=%d", shape, n), func(b *testing.B) {
				for b.Loop() {
					if _, err := p.Items(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestAliasesGenerated checks the benchmark's documents against the reference expansion.
func TestAliasesGenerated(t *testing.T) {
	for _, shape := range []string{"attrs", "set"} {
		p, err := ParseProducts(genAliasDoc(shape, 50))
		if err != nil {
			t.Fatal(err)
		}
		items, err := p.Items()
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			checkAttrs(t, p, it)
		}
	}
}
