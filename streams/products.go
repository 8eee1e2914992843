package streams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
)

// FormatProducts and FormatIndex are the only document formats this package reads.
const (
	FormatProducts = "products:1.0"
	FormatIndex    = "index:1.0"
)

// Products is a products:1.0 document: a tree products → versions → items. At every level the
// keys other than the child map are kept verbatim (as raw JSON) in Attrs, so a rewrite loses
// nothing; _aliases stays in Attrs of the document.
//
// Raw values read by ParseProducts are canonical: scalars exactly as spelled in the input
// (numbers are never converted), objects and arrays compact with their keys sorted. Treat them
// as immutable: Prune and Clone share them between copies.
type Products struct {
	Products map[string]*Product
	Attrs    map[string]json.RawMessage
}

// Product is one product: its own attributes and its versions.
type Product struct {
	Versions map[string]*Version
	Attrs    map[string]json.RawMessage
}

// Version is one version: its own attributes and its items.
type Version struct {
	Items map[string]*ItemEntry
	Attrs map[string]json.RawMessage
}

// ItemEntry is one item as written in the document (its own keys only).
type ItemEntry struct {
	Attrs map[string]json.RawMessage
}

// ParseProducts parses a products:1.0 document (unsigned JSON). It rejects invalid UTF-8,
// duplicate keys in any object, nesting deeper than MaxDepth, a "products", "versions" or
// "items" member that is not an object, and a format other than products:1.0. The input is
// copied; the result does not alias data.
func ParseProducts(data []byte) (*Products, error) {
	s, err := newScanner(bytes.Clone(data))
	if err != nil {
		return nil, fmt.Errorf("products document: %w", err)
	}
	p := &Products{Products: map[string]*Product{}, Attrs: map[string]json.RawMessage{}}
	err = s.object(func(key string) error {
		if key != "products" {
			return s.attr(p.Attrs, key)
		}
		return s.object(func(name string) error {
			prod := &Product{Versions: map[string]*Version{}, Attrs: map[string]json.RawMessage{}}
			p.Products[name] = prod
			if err := s.product(prod); err != nil {
				return fmt.Errorf("product %q: %w", name, err)
			}
			return nil
		})
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, fmt.Errorf("products document: %w", err)
	}
	if err := checkFormat(p.Attrs["format"], FormatProducts); err != nil {
		return nil, fmt.Errorf("products document %q: %w", p.ContentID(), err)
	}
	return p, nil
}

func (s *scanner) attr(attrs map[string]json.RawMessage, key string) error {
	raw, err := s.value()
	if err != nil {
		return fmt.Errorf("%q: %w", key, err)
	}
	attrs[key] = raw
	return nil
}

func (s *scanner) product(prod *Product) error {
	return s.object(func(key string) error {
		if key != "versions" {
			return s.attr(prod.Attrs, key)
		}
		return s.object(func(name string) error {
			v := &Version{Items: map[string]*ItemEntry{}, Attrs: map[string]json.RawMessage{}}
			prod.Versions[name] = v
			if err := s.version(v); err != nil {
				return fmt.Errorf("version %q: %w", name, err)
			}
			return nil
		})
	})
}

func (s *scanner) version(v *Version) error {
	return s.object(func(key string) error {
		if key != "items" {
			return s.attr(v.Attrs, key)
		}
		return s.object(func(name string) error {
			it := &ItemEntry{Attrs: make(map[string]json.RawMessage, 8)}
			v.Items[name] = it
			if err := s.object(func(key string) error { return s.attr(it.Attrs, key) }); err != nil {
				return fmt.Errorf("item %q: %w", name, err)
			}
			return nil
		})
	})
}

// checkFormat checks a raw "format" value.
func checkFormat(raw json.RawMessage, want string) error {
	if raw == nil {
		return fmt.Errorf("no format, want %s", want)
	}
	got, ok := rawString(raw)
	if !ok || got != want {
		return fmt.Errorf("format %s, want %s", raw, want)
	}
	return nil
}

// rawString decodes a raw JSON string; ok is false for any other value.
func rawString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	return unquote(raw, bytes.IndexByte(raw, '\\') >= 0), true
}

// ContentID is the document's content_id ("" if absent).
func (p *Products) ContentID() string {
	s, _ := rawString(p.Attrs["content_id"])
	return s
}

// Marshal writes the document as indented JSON with sorted keys and a trailing newline: one
// space per level, as python's json.dumps(indent=1, sort_keys=True). Raw values are checked and
// re-indented; scalars keep their spelling. A "products" key in Attrs (or "versions", "items" at
// the levels below) is ignored: the child map is written instead. Nil entries are written as
// empty objects.
func (p *Products) Marshal() ([]byte, error) {
	w := &writer{}
	keys := attrKeys(p.Attrs, "products")
	err := w.object(0, keys, func(k string) error {
		if k != "products" {
			return w.raw(1, p.Attrs[k])
		}
		return w.object(1, keysOf(p.Products), func(name string) error {
			return w.product(2, p.Products[name])
		})
	})
	if err != nil {
		return nil, fmt.Errorf("writing products document %q: %w", p.ContentID(), err)
	}
	return append(w.buf, '\n'), nil
}

func (w *writer) product(depth int, prod *Product) error {
	if prod == nil {
		prod = &Product{}
	}
	return w.object(depth, attrKeys(prod.Attrs, "versions"), func(k string) error {
		if k != "versions" {
			return w.raw(depth+1, prod.Attrs[k])
		}
		return w.object(depth+1, keysOf(prod.Versions), func(name string) error {
			return w.version(depth+2, prod.Versions[name])
		})
	})
}

func (w *writer) version(depth int, v *Version) error {
	if v == nil {
		v = &Version{}
	}
	return w.object(depth, attrKeys(v.Attrs, "items"), func(k string) error {
		if k != "items" {
			return w.raw(depth+1, v.Attrs[k])
		}
		return w.object(depth+1, keysOf(v.Items), func(name string) error {
			it := v.Items[name]
			if it == nil {
				it = &ItemEntry{}
			}
			return w.object(depth+2, keysOf(it.Attrs), func(k string) error {
				return w.raw(depth+3, it.Attrs[k])
			})
		})
	})
}

// attrKeys lists the keys of attrs plus child (once).
func attrKeys(attrs map[string]json.RawMessage, child string) []string {
	keys := make([]string, 0, len(attrs)+1)
	for k := range attrs {
		if k != child {
			keys = append(keys, k)
		}
	}
	return append(keys, child)
}

func keysOf[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// Prune returns a deep copy holding only the items for which keep returns true; versions left
// without items and products left without versions are dropped. Everything else (attributes,
// _aliases, unknown keys) is kept as it was. Raw attribute values are shared with p.
func (p *Products) Prune(keep func(product, version, item string) bool) *Products {
	return p.copyTree(keep)
}

// Clone returns a deep copy of p (maps copied, raw values shared), keeping empty products and
// versions.
func (p *Products) Clone() *Products {
	return p.copyTree(nil)
}

// copyTree copies p; with a keep function it drops unkept items and what is left empty.
func (p *Products) copyTree(keep func(product, version, item string) bool) *Products {
	out := &Products{Products: make(map[string]*Product, len(p.Products)), Attrs: maps.Clone(p.Attrs)}
	if out.Attrs == nil {
		out.Attrs = map[string]json.RawMessage{}
	}
	for pn, prod := range p.Products {
		if prod == nil {
			prod = &Product{}
		}
		np := &Product{Versions: make(map[string]*Version, len(prod.Versions)), Attrs: cloneAttrs(prod.Attrs)}
		for vn, v := range prod.Versions {
			if v == nil {
				v = &Version{}
			}
			nv := &Version{Items: make(map[string]*ItemEntry, len(v.Items)), Attrs: cloneAttrs(v.Attrs)}
			for in, it := range v.Items {
				if keep != nil && !keep(pn, vn, in) {
					continue
				}
				var attrs map[string]json.RawMessage
				if it != nil {
					attrs = it.Attrs
				}
				nv.Items[in] = &ItemEntry{Attrs: cloneAttrs(attrs)}
			}
			if keep != nil && len(nv.Items) == 0 {
				continue
			}
			np.Versions[vn] = nv
		}
		if keep != nil && len(np.Versions) == 0 {
			continue
		}
		out.Products[pn] = np
	}
	return out
}

func cloneAttrs(m map[string]json.RawMessage) map[string]json.RawMessage {
	if m == nil {
		return map[string]json.RawMessage{}
	}
	return maps.Clone(m)
}
