package streams

// THIS FILE IS A CONTRACT STUB: the signatures below are what sync/ and cmd/ call. The streams
// helper replaces the bodies (and may split the file), keeping the signatures.

import "encoding/json"

// Index is an index:1.0 document. Unknown top-level keys are kept in Extra and written back.
type Index struct {
	Format  string
	Updated string
	Index   map[string]*IndexEntry // by content_id
	Extra   map[string]json.RawMessage
}

// IndexEntry is one entry of an index. Unknown keys (clouds, cloudname, …) are kept in Extra.
type IndexEntry struct {
	Path     string
	Format   string
	Datatype string
	Updated  string
	Products []string
	Extra    map[string]json.RawMessage
}

// ParseIndex parses an index:1.0 document (unsigned JSON).
func ParseIndex(data []byte) (*Index, error) { panic("stub") }

// Marshal writes the index as indented JSON with sorted keys and a trailing newline.
func (ix *Index) Marshal() ([]byte, error) { panic("stub") }

// Products is a products:1.0 document: a tree products → versions → items. At every level the
// keys other than the child map are kept verbatim (as raw JSON) in Attrs, so a rewrite loses
// nothing; _aliases stays in Attrs of the document.
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

// ParseProducts parses a products:1.0 document (unsigned JSON).
func ParseProducts(data []byte) (*Products, error) { panic("stub") }

// Marshal writes the document as indented JSON with sorted keys and a trailing newline.
func (p *Products) Marshal() ([]byte, error) { panic("stub") }

// ContentID is the document's content_id ("" if absent).
func (p *Products) ContentID() string { panic("stub") }

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
	Attrs map[string]string
}

// Items flattens the document into its items with effective attributes, sorted by product,
// version, item name. It fails (naming product/version/item) on a path that ValidPath rejects, a
// path without a valid non-negative size, a malformed checksum.
func (p *Products) Items() ([]Item, error) { panic("stub") }

// Prune returns a deep copy holding only the items for which keep returns true; versions left
// without items and products left without versions are dropped. Everything else (attributes,
// _aliases, unknown keys) is kept as it was.
func (p *Products) Prune(keep func(product, version, item string) bool) *Products { panic("stub") }

// Filter is one sstream-mirror filter: key=value, key!=value, key~regex, key!~regex.
type Filter struct {
	Key   string
	Op    string // "=", "!=", "~", "!~"
	Value string
}

// ParseFilter parses one filter argument.
func ParseFilter(s string) (Filter, error) { panic("stub") }

// String gives the filter back as it would be written on a command line.
func (f Filter) String() string { panic("stub") }

// Match tests effective attributes; a missing key compares as "".
func (f Filter) Match(attrs map[string]string) bool { panic("stub") }

// Filters are ANDed.
type Filters []Filter

// ParseFilters parses several filter arguments.
func ParseFilters(args []string) (Filters, error) { panic("stub") }

// Match reports whether every filter holds (true for no filters).
func (fs Filters) Match(attrs map[string]string) bool { panic("stub") }

// SelectVersions applies sstream-mirror's --max/--keep to one product. upstream are the versions
// upstream offers that still have at least one selected item; held are the versions the mirror
// holds now. It returns the versions to hold, sorted oldest first: the newest max (byte-string
// order) of upstream, plus, with keep, held versions that vanished upstream while room remains
// (newest first). max <= 0 means no limit.
func SelectVersions(upstream, held []string, max int, keep bool) []string { panic("stub") }

// ValidPath checks a catalogue path before it touches a store (see store.ValidKey: not empty, not
// absolute, no "..", no backslash, no NUL or control characters).
func ValidPath(p string) error { panic("stub") }

// CheckConsistent fails when one path is listed with two different sizes or checksums.
func CheckConsistent(items []Item) error { panic("stub") }
