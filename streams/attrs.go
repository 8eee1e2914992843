package streams

import (
	"iter"
	"slices"
	"strings"
)

// Attrs are an item's effective attributes (see Products.Items for the rules), read-only. They
// are layered so that the items of one version share what they inherit: a catalogue of 100,000
// items would otherwise hold 100,000 maps of some twenty entries each.
type Attrs struct {
	item    string // item_name, when hasItem
	hasItem bool
	syn     []kv // content_id, product_name, version_name; shared by the version's items
	own     []kv // the item's own scalars
	inh     []kv // the document's, product's and version's scalars merged; shared
	ali     []kv // what _aliases add; shared by the items that match the same aliases
	// Each of syn, own, inh, ali is sorted by key and has each key once; a key is looked up in
	// item, syn, own, inh, ali in that order, the first found winning (so a key written at any
	// level of the document wins over an alias value).
}

// NewAttrs makes Attrs holding exactly m (for items built by hand, as in tests).
func NewAttrs(m map[string]string) Attrs {
	own := make([]kv, 0, len(m))
	for k, v := range m {
		own = append(own, kv{k, v})
	}
	sortKV(own)
	return Attrs{own: own}
}

// Get returns the attribute named key.
func (a Attrs) Get(key string) (string, bool) {
	if a.hasItem && key == "item_name" {
		return a.item, true
	}
	for _, layer := range [...][]kv{a.syn, a.own, a.inh, a.ali} {
		if v, ok := lookupKV(layer, key); ok {
			return v, true
		}
	}
	return "", false
}

// Value returns the attribute named key, or "" when it is absent.
func (a Attrs) Value(key string) string {
	v, _ := a.Get(key)
	return v
}

// All yields every attribute once, sorted by key.
func (a Attrs) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		keys := make([]string, 0, len(a.syn)+len(a.own)+len(a.inh)+len(a.ali)+1)
		if a.hasItem {
			keys = append(keys, "item_name")
		}
		for _, layer := range [...][]kv{a.syn, a.own, a.inh, a.ali} {
			for _, e := range layer {
				keys = append(keys, e.k)
			}
		}
		slices.Sort(keys)
		keys = slices.Compact(keys)
		for _, k := range keys {
			v, _ := a.Get(k)
			if !yield(k, v) {
				return
			}
		}
	}
}

// Map returns the attributes as a new map.
func (a Attrs) Map() map[string]string {
	m := map[string]string{}
	for k, v := range a.All() {
		m[k] = v
	}
	return m
}

// Len is the number of attributes.
func (a Attrs) Len() int {
	n := 0
	for range a.All() {
		n++
	}
	return n
}

func sortKV(kvs []kv) {
	slices.SortFunc(kvs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
}

func lookupKV(kvs []kv, key string) (string, bool) {
	if len(kvs) < 8 {
		for _, e := range kvs {
			if e.k == key {
				return e.v, true
			}
		}
		return "", false
	}
	i, ok := slices.BinarySearchFunc(kvs, key, func(e kv, k string) int { return strings.Compare(e.k, k) })
	if !ok {
		return "", false
	}
	return kvs[i].v, true
}

// overlay merges two sorted attribute lists, over winning where both have a key.
func overlay(under, over []kv) []kv {
	if len(over) == 0 {
		return under
	}
	if len(under) == 0 {
		return over
	}
	out := make([]kv, 0, len(under)+len(over))
	i, j := 0, 0
	for i < len(under) && j < len(over) {
		switch c := strings.Compare(under[i].k, over[j].k); {
		case c < 0:
			out = append(out, under[i])
			i++
		case c > 0:
			out = append(out, over[j])
			j++
		default:
			out = append(out, over[j])
			i++
			j++
		}
	}
	out = append(out, under[i:]...)
	return append(out, over[j:]...)
}
