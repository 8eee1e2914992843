package streams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Item is one item with its effective attributes (inheritance and _aliases applied).
type Item struct {
	ContentID string
	Product   string
	Version   string
	Name      string
	Path      string // "" when the item has no content
	Size      int64
	SHA256    string // lowercase hex, "" when absent
	SHA512    string
	MD5       string
	// Attrs are the effective scalar attributes as strings, including content_id, product_name,
	// version_name, item_name. Numbers keep their JSON spelling.
	Attrs Attrs
}

// ItemKey names one item of one products document.
type ItemKey struct {
	ContentID, Product, Version, Item string
}

// Key returns the item's ItemKey.
func (it *Item) Key() ItemKey {
	return ItemKey{it.ContentID, it.Product, it.Version, it.Name}
}

// String gives the key as content_id/product/version/item, for messages.
func (k ItemKey) String() string {
	return k.ContentID + "/" + k.Product + "/" + k.Version + "/" + k.Item
}

// Items flattens the document into its items with effective attributes, sorted by product,
// version, item name. It fails (naming product/version/item) on a path that ValidPath rejects, a
// path without a valid non-negative size, a malformed checksum.
//
// The rules, in detail:
//   - Effective attributes merge, lowest level winning: the document's scalar values, the
//     product's, the version's, the item's, then the synthetic content_id, product_name,
//     version_name and item_name. Scalars are strings (decoded), numbers (their JSON spelling)
//     and booleans ("true"/"false"); null, objects and arrays are not attributes.
//   - _aliases ({attr: {value: {k: v}}}, in the document's attributes): for every attr, in
//     sorted order, whose effective value (before any alias is applied) has an entry, its
//     scalar {k: v} are added where k is not already an effective attribute: keys written in
//     the document win over alias values, and the first alias (by attr name) wins over later
//     ones. Parts of _aliases that are not objects are ignored.
//   - path, size, sha256, sha512 and md5 are read from the effective attributes. With a path,
//     size must be a non-negative integer, as a number or a string of digits. Checksums must
//     be hex of the right length in either case; they are returned in lowercase. Without a path
//     a size that is not such an integer leaves Size at 0.
func (p *Products) Items() ([]Item, error) {
	cid := p.ContentID()
	aliases := parseAliases(p.Attrs["_aliases"])
	aliases.cache = map[string][]kv{}
	top := scalars(p.Attrs)

	n := 0
	for _, prod := range p.Products {
		if prod != nil {
			for _, v := range prod.Versions {
				if v != nil {
					n += len(v.Items)
				}
			}
		}
	}
	items := make([]Item, 0, n)
	for _, pn := range sortedKeys(p.Products) {
		prod := p.Products[pn]
		if prod == nil {
			continue
		}
		pattrs := overlay(top, scalars(prod.Attrs))
		for _, vn := range sortedKeys(prod.Versions) {
			v := prod.Versions[vn]
			if v == nil {
				continue
			}
			// Shared by the version's items.
			inh := overlay(pattrs, scalars(v.Attrs))
			syn := []kv{{"content_id", cid}, {"product_name", pn}, {"version_name", vn}}
			verMatched := aliases.present(syn, inh)
			verAli := aliases.expand(Attrs{syn: syn, inh: inh}, verMatched)
			for _, in := range sortedKeys(v.Items) {
				it := v.Items[in]
				var own []kv
				if it != nil {
					own = scalars(it.Attrs)
				}
				attrs := Attrs{item: in, hasItem: true, syn: syn, own: own, inh: inh, ali: verAli}
				if aliases.touches(in, own) {
					// The item's own attributes (or its name) select aliases, or override a
					// value that selected one: work its additions out on their own.
					attrs.ali = aliases.expand(attrs, aliases.withOwn(verMatched, in, own))
				}
				item := Item{ContentID: cid, Product: pn, Version: vn, Name: in, Attrs: attrs}
				if err := item.fill(); err != nil {
					return nil, fmt.Errorf("products %q: product %q version %q item %q: %w", cid, pn, vn, in, err)
				}
				items = append(items, item)
			}
		}
	}
	return items, nil
}

// fill sets Path, Size and the checksums from Attrs.
func (it *Item) fill() error {
	path, hasPath := it.Attrs.Get("path")
	sizeStr, hasSize := it.Attrs.Get("size")
	if hasSize {
		size, err := parseSize(sizeStr)
		if err != nil && path != "" {
			return fmt.Errorf("path %q: %w", path, err)
		}
		it.Size = size
	}
	if hasPath {
		if err := ValidPath(path); err != nil {
			return err
		}
		if !hasSize {
			return fmt.Errorf("path %q has no size", path)
		}
		it.Path = path
	}
	for _, c := range []struct {
		key string
		n   int
		dst *string
	}{{"sha256", 64, &it.SHA256}, {"sha512", 128, &it.SHA512}, {"md5", 32, &it.MD5}} {
		s, ok := it.Attrs.Get(c.key)
		if !ok {
			continue
		}
		if len(s) != c.n || !isHexString(s) {
			return fmt.Errorf("%s %q is not %d hex digits", c.key, s, c.n)
		}
		*c.dst = strings.ToLower(s)
	}
	return nil
}

// parseSize reads a size: a non-negative integer written with digits only.
func parseSize(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("size %q is not a non-negative integer", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is out of range: larger than any file can be", s)
	}
	return n, nil
}

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

type kv struct{ k, v string }

// scalars lists the scalar attributes of one level, decoded, sorted by key.
func scalars(attrs map[string]json.RawMessage) []kv {
	out := make([]kv, 0, len(attrs))
	for k, raw := range attrs {
		if s, ok := scalar(raw); ok {
			out = append(out, kv{k, s})
		}
	}
	sortKV(out)
	return out
}

// scalar decodes a string, number or boolean raw value.
func scalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		return rawString(raw)
	case c == '-' || '0' <= c && c <= '9':
		return string(raw), true
	case c == 't' || c == 'f':
		return string(raw), true
	}
	return "", false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := keysOf(m)
	slices.Sort(keys)
	return keys
}

// aliasTable is a parsed _aliases: attr → value → scalar attributes to add.
type aliasTable struct {
	attrs  []string // sorted
	values map[string]map[string][]kv
	cache  map[string][]kv // expansions by the (attribute, value) pairs that matched; nil: none
}

func parseAliases(raw json.RawMessage) aliasTable {
	t := aliasTable{values: map[string]map[string][]kv{}}
	if raw == nil {
		return t
	}
	top, ok := rawObject(raw)
	if !ok {
		return t
	}
	for attr, rawValues := range top {
		values, ok := rawObject(rawValues)
		if !ok {
			continue
		}
		byValue := map[string][]kv{}
		for value, rawSet := range values {
			set, ok := rawObject(rawSet)
			if !ok {
				continue
			}
			kvs := scalars(set)
			slices.SortFunc(kvs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
			byValue[value] = kvs
		}
		t.values[attr] = byValue
		t.attrs = append(t.attrs, attr)
	}
	slices.Sort(t.attrs)
	return t
}

// rawObject splits a raw JSON object into its members; ok is false for anything else.
func rawObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	s, err := newScanner(raw)
	if err != nil || s.peek() != '{' {
		return nil, false
	}
	m := map[string]json.RawMessage{}
	err = s.object(func(key string) error { return s.attr(m, key) })
	if err != nil || s.end() != nil {
		return nil, false
	}
	return m, true
}

// present lists the alias attributes that syn or inh have, sorted: the ones that select aliases
// for every item of a version whose own attributes do not say otherwise. It looks at the shorter
// of the alias attributes and the version's attributes.
func (t *aliasTable) present(syn, inh []kv) []string {
	if len(t.attrs) == 0 {
		return nil
	}
	var out []string
	if len(t.attrs) <= len(syn)+len(inh) {
		for _, attr := range t.attrs {
			if _, ok := lookupKV(syn, attr); ok {
				out = append(out, attr)
			} else if _, ok := lookupKV(inh, attr); ok {
				out = append(out, attr)
			}
		}
		return out
	}
	for _, layer := range [...][]kv{syn, inh} {
		for _, e := range layer {
			if _, ok := t.values[e.k]; ok {
				out = append(out, e.k)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// touches reports whether an item's name or own attributes name an alias attribute.
func (t *aliasTable) touches(name string, own []kv) bool {
	if len(t.attrs) == 0 {
		return false
	}
	if _, ok := t.values["item_name"]; ok {
		return true
	}
	for _, e := range own {
		if _, ok := t.values[e.k]; ok {
			return true
		}
	}
	return false
}

// withOwn adds to the version's matched alias attributes those the item's own attributes (or
// its name) have, sorted and each once.
func (t *aliasTable) withOwn(matched []string, name string, own []kv) []string {
	out := slices.Clone(matched)
	if _, ok := t.values["item_name"]; ok {
		out = append(out, "item_name")
	}
	for _, e := range own {
		if _, ok := t.values[e.k]; ok {
			out = append(out, e.k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// expand returns what the aliases of the attributes in matched (sorted) add for a: for each,
// in order, whose value in a has an entry, its keys, the first alias adding a key winning.
// Keys a already has are left in: Attrs looks the alias layer up last, so they never show.
// Matches are found on a's own values, so alias values never trigger other aliases. The
// result depends only on the (attribute, value) pairs that matched, and is shared by every
// item with the same pairs: work linear in the size of the document, whatever the shape of
// _aliases.
func (t *aliasTable) expand(a Attrs, matched []string) []kv {
	var key strings.Builder
	var sets [][]kv
	for _, attr := range matched {
		v, ok := a.Get(attr)
		if !ok {
			continue
		}
		kvs, ok := t.values[attr][v]
		if !ok || len(kvs) == 0 {
			continue
		}
		sets = append(sets, kvs)
		key.WriteString(attr)
		key.WriteByte(0)
		key.WriteString(v)
		key.WriteByte(0)
	}
	switch len(sets) {
	case 0:
		return nil
	case 1:
		return sets[0] // sorted by key, each key once
	}
	if ali, ok := t.cache[key.String()]; ok {
		return ali
	}
	n := 0
	for _, kvs := range sets {
		n += len(kvs)
	}
	all := make([]kv, 0, n)
	for _, kvs := range sets {
		all = append(all, kvs...)
	}
	// Stable: among equal keys the earlier alias (by attribute name) stays first.
	slices.SortStableFunc(all, func(x, y kv) int { return strings.Compare(x.k, y.k) })
	all = slices.CompactFunc(all, func(x, y kv) bool { return x.k == y.k })
	if t.cache != nil {
		t.cache[key.String()] = all
	}
	return all
}

// CheckConsistent fails when one path is listed with two different sizes or checksums. Items
// without a path are ignored; a checksum absent on one side is not a conflict.
func CheckConsistent(items []Item) error {
	first := make(map[string]int, len(items))
	for i := range items {
		it := &items[i]
		if it.Path == "" {
			continue
		}
		j, ok := first[it.Path]
		if !ok {
			first[it.Path] = i
			continue
		}
		o := &items[j]
		var what string
		switch {
		case o.Size != it.Size:
			what = fmt.Sprintf("size %d and %d", o.Size, it.Size)
		case o.SHA256 != "" && it.SHA256 != "" && o.SHA256 != it.SHA256:
			what = fmt.Sprintf("sha256 %s and %s", o.SHA256, it.SHA256)
		case o.SHA512 != "" && it.SHA512 != "" && o.SHA512 != it.SHA512:
			what = fmt.Sprintf("sha512 %s and %s", o.SHA512, it.SHA512)
		case o.MD5 != "" && it.MD5 != "" && o.MD5 != it.MD5:
			what = fmt.Sprintf("md5 %s and %s", o.MD5, it.MD5)
		default:
			continue
		}
		return fmt.Errorf("path %q is listed with %s by %s and %s", it.Path, what, o.Key(), it.Key())
	}
	return nil
}
