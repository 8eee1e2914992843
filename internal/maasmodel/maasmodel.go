// Package maasmodel checks SimpleStreams documents against what MAAS 4 requires of them: the
// pydantic models MAAS reads a mirror with (canonical/maas, src/maasservicelayer/simplestreams/
// models.py; read at commit 9e51f33c, August 2026). MAAS reads the index into
// SimpleStreamsIndexList, then every products file the index lists with
// SimpleStreamsProductListFactory, which accepts a file if it is a bootloader, a multi-file
// (Ubuntu: kernel, initrd, squashfs) or a single-file (root-tgz) product list. One file that
// fits none of them fails the whole import.
//
// The models read each level's own keys only: unlike sstream-mirror, MAAS does not inherit
// attributes, so a product's os, arch and label must be on the product itself, and an item's
// ftype, path, sha256 and size on the item. Keys the models do not name are ignored.
//
// What the models require, and this package checks:
//
//   - products file: content_id (string), datatype ("image-ids" or "image-downloads"),
//     updated (a date, RFC 2822 as upstream writes it, or ISO 8601), format (a string if
//     present), products (a non-empty object).
//   - every product: arch, label, os (strings); versions (a non-empty object); no key named
//     product_name (MAAS passes the product's name under that keyword: a clash is a crash).
//   - bootloader product: arches and bootloader-type (strings); every version has at least one
//     of the items grub2-signed, shim-signed, grub2, syslinux, each with ftype, path, sha256,
//     src_package, src_release, src_version (strings) and size (an integer).
//   - multi-file product: release, release_title, subarch, subarches, version (strings);
//     support_eol a date (YYYY-MM-DD) if present; kflavor, krel, release_codename strings or
//     null if present; every version has boot-kernel, boot-initrd, manifest and at least one of
//     squashfs, root-image.gz, each with ftype, path, sha256 (strings), size (an integer) and
//     kpackage a string or null if present; version-level support_eol and support_esm_eol dates
//     if present.
//   - single-file product: the multi-file product's strings and support_eol; every version has
//     manifest and root-tgz (as items above).
//   - a version has no key version_name (the same clash as product_name). MAAS merges a
//     version's items into the version's own keys, items winning; so does this package.
//   - index: updated (a date), format (a string if present), index (a non-empty object); every
//     entry: path (string), updated (a date), products (a list of strings), datatype one of the
//     two values if present, no key "name".
//
// Left out, or stricter than MAAS (pydantic's lax mode):
//
//   - size: MAAS also accepts a numeric string ("123") and a bool; this package wants a JSON
//     integer (or a number with a zero fraction such as 1.0, which pydantic accepts too).
//   - dates: MAAS takes any string python's datetime.fromisoformat reads; this package takes
//     RFC 3339 and the common ISO forms (date, date and time with or without a zone) only.
//     support_eol: MAAS splits on "-" and calls int() on each part (so " 5" or "+5" pass);
//     this package wants three decimal parts that make a real date, or YYYYMMDD.
//   - what MAAS does with a valid file afterwards (which products it selects, whether the
//     files exist on the mirror, sha256 checks at download) is not checked here.
package maasmodel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/streams"
)

// Model is one of the product-list models MAAS tries.
type Model int

// The models, in the order MAAS's factory tries them.
const (
	Bootloader Model = iota + 1 // SimpleStreamsBootloaderProductList
	MultiFile                   // SimpleStreamsMultiFileProductList (Ubuntu boot images)
	SingleFile                  // SimpleStreamsSingleFileProductList (root-tgz images)
)

func (m Model) String() string {
	switch m {
	case Bootloader:
		return "bootloader"
	case MultiFile:
		return "multi-file"
	case SingleFile:
		return "single-file"
	}
	return "no model"
}

// Error lists why MAAS would refuse a document. Problems name the product, version and item.
type Error struct {
	Doc      string   // what was checked: "products file <content_id>" or "index"
	Model    Model    // the model the problems are reported against (0 for the index)
	Problems []string // sorted
}

func (e *Error) Error() string {
	const show = 8
	var b strings.Builder
	b.WriteString(e.Doc)
	b.WriteString(" would be refused by MAAS")
	if e.Model != 0 {
		fmt.Fprintf(&b, " (it fits no model; as a %s product list:", e.Model)
	} else {
		b.WriteString(" (")
	}
	for i, p := range e.Problems {
		if i == show {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-show)
			break
		}
		if i > 0 {
			b.WriteString(";")
		}
		b.WriteString(" ")
		b.WriteString(p)
	}
	b.WriteString(")")
	return b.String()
}

// CheckProducts checks a products document against MAAS's product-list models. It returns the
// model that accepts it (the last one that does, as MAAS's factory keeps the last success) or an
// *Error with the problems found against the model the document most looks like.
func CheckProducts(p *streams.Products) (Model, error) {
	var accepted Model
	problems := map[Model][]string{}
	for _, m := range []Model{Bootloader, MultiFile, SingleFile} {
		c := &checker{}
		c.productList(p, m)
		if len(c.problems) == 0 {
			accepted = m
		}
		problems[m] = c.problems
	}
	if accepted != 0 {
		return accepted, nil
	}
	m := guess(p)
	ps := slices.Clone(problems[m])
	slices.Sort(ps)
	return 0, &Error{Doc: fmt.Sprintf("products file %q", p.ContentID()), Model: m, Problems: ps}
}

// CheckProductsJSON parses an unsigned products document and checks it.
func CheckProductsJSON(data []byte) (Model, error) {
	p, err := streams.ParseProducts(data)
	if err != nil {
		return 0, err
	}
	return CheckProducts(p)
}

// guess picks the model a failing document was meant for: bootloader if a product says
// bootloader-type or the content id says bootloader, single-file if a version has root-tgz,
// multi-file otherwise.
func guess(p *streams.Products) Model {
	if strings.Contains(p.ContentID(), "bootloader") {
		return Bootloader
	}
	for _, prod := range p.Products {
		if prod == nil {
			continue
		}
		if _, ok := prod.Attrs["bootloader-type"]; ok {
			return Bootloader
		}
		for _, v := range prod.Versions {
			if v == nil {
				continue
			}
			if _, ok := v.Items["root-tgz"]; ok {
				return SingleFile
			}
		}
	}
	return MultiFile
}

type checker struct {
	problems []string
}

func (c *checker) addf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// field kinds
type kind int

const (
	kString      kind = iota // a JSON string; null is refused
	kOptString               // absent, null or a string
	kDefString               // absent or a string (a field with a default, not nullable)
	kInt                     // an integer number
	kOptDate                 // absent, null or a YYYY-MM-DD date
	kDatetime                // an RFC 2822 or ISO 8601 date-time string
	kDatatype                // "image-ids" or "image-downloads"
	kOptDatatype             // absent, null or a datatype
)

// check checks one key of attrs; where names the object for messages.
func (c *checker) check(where string, attrs map[string]json.RawMessage, key string, k kind) {
	raw, ok := attrs[key]
	if !ok {
		switch k {
		case kOptString, kDefString, kOptDate, kOptDatatype:
		default:
			c.addf("%s: no %s", where, key)
		}
		return
	}
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		switch k {
		case kOptString, kOptDate, kOptDatatype:
		default:
			c.addf("%s: %s is null", where, key)
		}
		return
	}
	if k == kInt {
		if !isInteger(raw) {
			c.addf("%s: %s is %s, not an integer", where, key, short(raw))
		}
		return
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		c.addf("%s: %s is %s, not a string", where, key, short(raw))
		return
	}
	switch k {
	case kOptDate:
		if !isDate(s) {
			c.addf("%s: %s %q is not a date (YYYY-MM-DD)", where, key, s)
		}
	case kDatetime:
		if !isDatetime(s) {
			c.addf("%s: %s %q is not a date (RFC 2822, as \"Thu, 24 Jul 2025 08:01:49 +0000\", or ISO 8601)", where, key, s)
		}
	case kDatatype, kOptDatatype:
		if s != "image-ids" && s != "image-downloads" {
			c.addf("%s: %s %q is neither image-ids nor image-downloads", where, key, s)
		}
	}
}

func (c *checker) productList(p *streams.Products, m Model) {
	const where = "document"
	c.check(where, p.Attrs, "content_id", kString)
	c.check(where, p.Attrs, "datatype", kDatatype)
	c.check(where, p.Attrs, "format", kDefString)
	c.check(where, p.Attrs, "updated", kDatetime)
	if len(p.Products) == 0 {
		c.addf("%s: no products", where)
	}
	for name, prod := range p.Products {
		if prod == nil {
			prod = &streams.Product{}
		}
		c.product(fmt.Sprintf("product %s", name), prod, m)
	}
}

func (c *checker) product(where string, prod *streams.Product, m Model) {
	if _, ok := prod.Attrs["product_name"]; ok {
		c.addf("%s: has a product_name key, which clashes with the name MAAS passes", where)
	}
	for _, key := range []string{"arch", "label", "os"} {
		c.check(where, prod.Attrs, key, kString)
	}
	switch m {
	case Bootloader:
		c.check(where, prod.Attrs, "arches", kString)
		c.check(where, prod.Attrs, "bootloader-type", kString)
	case MultiFile, SingleFile:
		for _, key := range []string{"release", "release_title", "subarch", "subarches", "version"} {
			c.check(where, prod.Attrs, key, kString)
		}
		c.check(where, prod.Attrs, "support_eol", kOptDate)
		if m == MultiFile {
			for _, key := range []string{"kflavor", "krel", "release_codename"} {
				c.check(where, prod.Attrs, key, kOptString)
			}
		}
	}
	if len(prod.Versions) == 0 {
		c.addf("%s: no versions", where)
	}
	for vname, v := range prod.Versions {
		if v == nil {
			v = &streams.Version{}
		}
		c.version(fmt.Sprintf("%s version %s", where, vname), v, m)
	}
}

// Item names each model reads from a version.
var (
	bootloaderItems = []string{"grub2-signed", "shim-signed", "grub2", "syslinux"}
	multiFileItems  = []string{"boot-initrd", "boot-kernel", "manifest"}    // required
	rootImages      = []string{"squashfs", "root-image.gz"}                 // at least one
	singleFileItems = []string{"manifest", "root-tgz"}                      // required
	fileKeys        = []string{"ftype", "path", "sha256"}                   // strings, plus size
	bootloaderKeys  = []string{"src_package", "src_release", "src_version"} // strings
)

func (c *checker) version(where string, v *streams.Version, m Model) {
	// MAAS merges the items into the version's own keys (items win) and reads fields from that.
	merged := make(map[string]json.RawMessage, len(v.Attrs)+len(v.Items))
	for k, raw := range v.Attrs {
		if k != "items" {
			merged[k] = raw
		}
	}
	objects := map[string]map[string]json.RawMessage{}
	for name, it := range v.Items {
		attrs := map[string]json.RawMessage{}
		if it != nil && it.Attrs != nil {
			attrs = it.Attrs
		}
		objects[name] = attrs
		merged[name] = json.RawMessage("{}")
	}
	if _, ok := merged["version_name"]; ok {
		c.addf("%s: has a version_name key, which clashes with the name MAAS passes", where)
	}
	// file returns the object under name: present is false if absent or null.
	file := func(name string) (attrs map[string]json.RawMessage, present bool) {
		if o, ok := objects[name]; ok {
			return o, true
		}
		raw, ok := merged[name]
		if !ok || string(bytes.TrimSpace(raw)) == "null" {
			return nil, false
		}
		if err := json.Unmarshal(raw, &attrs); err != nil || attrs == nil {
			c.addf("%s: %s is %s, not an object", where, name, short(raw))
			return nil, true
		}
		return attrs, true
	}
	checkFile := func(name string, attrs map[string]json.RawMessage) {
		if attrs == nil {
			return
		}
		iw := where + " item " + name
		for _, key := range fileKeys {
			c.check(iw, attrs, key, kString)
		}
		c.check(iw, attrs, "size", kInt)
		switch m {
		case Bootloader:
			for _, key := range bootloaderKeys {
				c.check(iw, attrs, key, kString)
			}
		default:
			c.check(iw, attrs, "kpackage", kOptString)
		}
	}
	switch m {
	case Bootloader:
		found := false
		for _, name := range bootloaderItems {
			if attrs, ok := file(name); ok {
				found = true
				checkFile(name, attrs)
			}
		}
		if !found {
			c.addf("%s: none of the items %s", where, strings.Join(bootloaderItems, ", "))
		}
	case MultiFile:
		c.check(where, merged, "support_eol", kOptDate)
		c.check(where, merged, "support_esm_eol", kOptDate)
		for _, name := range multiFileItems {
			attrs, ok := file(name)
			if !ok {
				c.addf("%s: no %s item", where, name)
			}
			checkFile(name, attrs)
		}
		found := false
		for _, name := range rootImages {
			if attrs, ok := file(name); ok {
				found = true
				checkFile(name, attrs)
			}
		}
		if !found {
			c.addf("%s: neither a squashfs nor a root-image.gz item", where)
		}
	case SingleFile:
		for _, name := range singleFileItems {
			attrs, ok := file(name)
			if !ok {
				c.addf("%s: no %s item", where, name)
			}
			checkFile(name, attrs)
		}
	}
}

// CheckIndex checks an index document against MAAS's SimpleStreamsIndexList model.
func CheckIndex(ix *streams.Index) error {
	c := &checker{}
	top := map[string]json.RawMessage{}
	if ix.Updated != "" {
		top["updated"] = quote(ix.Updated)
	}
	c.check("index", top, "updated", kDatetime)
	if len(ix.Index) == 0 {
		c.addf("index: no entries")
	}
	for id, e := range ix.Index {
		where := fmt.Sprintf("index entry %s", id)
		if e == nil {
			c.addf("%s: empty", where)
			continue
		}
		if _, ok := e.Extra["name"]; ok {
			c.addf("%s: has a name key, which clashes with the name MAAS passes", where)
		}
		attrs := map[string]json.RawMessage{}
		for k, s := range map[string]string{"path": e.Path, "updated": e.Updated, "datatype": e.Datatype} {
			if s != "" {
				attrs[k] = quote(s)
			}
		}
		c.check(where, attrs, "path", kString)
		c.check(where, attrs, "updated", kDatetime)
		c.check(where, attrs, "datatype", kOptDatatype)
		if e.Products == nil {
			c.addf("%s: no products list", where)
		}
	}
	if len(c.problems) == 0 {
		return nil
	}
	slices.Sort(c.problems)
	return &Error{Doc: "index", Problems: c.problems}
}

// CheckIndexJSON parses an unsigned index document and checks it.
func CheckIndexJSON(data []byte) error {
	ix, err := streams.ParseIndex(data)
	if err != nil {
		return err
	}
	return CheckIndex(ix)
}

// CheckMirror checks what MAAS reads from a mirror: the index at indexPath (read with read,
// paths relative to the mirror root) and every products file it lists. A clearsigned document
// (.sjson) is read without checking its signature, as MAAS does with skip_keyring_verification:
// verify signatures separately, or have read return verified bodies. It returns the model of
// each products file by content id; the error joins every document's problems.
func CheckMirror(read func(path string) ([]byte, error), indexPath string) (map[string]Model, error) {
	read = unsigned(read)
	data, err := read(indexPath)
	if err != nil {
		return nil, err
	}
	ix, err := streams.ParseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", indexPath, err)
	}
	var errs []error
	if err := CheckIndex(ix); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", indexPath, err))
	}
	models := map[string]Model{}
	ids := make([]string, 0, len(ix.Index))
	for id := range ix.Index {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := ix.Index[id]
		if e == nil || e.Path == "" {
			continue
		}
		data, err := read(e.Path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := CheckProductsJSON(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.Path, err))
			continue
		}
		models[id] = m
	}
	return models, errors.Join(errs...)
}

// CheckFS is CheckMirror over a file system holding the mirror root (os.DirFS(dir)).
func CheckFS(fsys fs.FS, indexPath string) (map[string]Model, error) {
	return CheckMirror(func(p string) ([]byte, error) { return fs.ReadFile(fsys, p) }, indexPath)
}

// unsigned wraps read so that a clearsigned document comes back as its body.
func unsigned(read func(string) ([]byte, error)) func(string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		data, err := read(path)
		if err != nil || !sign.IsClearsigned(data) {
			return data, err
		}
		return sign.StripClearsigned(path, data)
	}
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func short(raw json.RawMessage) string {
	if len(raw) > 40 {
		return string(raw[:37]) + "..."
	}
	return string(raw)
}

// isInteger reports whether raw is a JSON number with an integral value (pydantic accepts 5
// and 5.0 for an int field, not 5.5).
func isInteger(raw json.RawMessage) bool {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return false
	}
	if !json.Valid(raw) {
		return false
	}
	s := string(raw)
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return true
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f == float64(int64(f))
}

var ymd = regexp.MustCompile(`^([0-9]+)-([0-9]+)-([0-9]+)$`)

// isDate reports whether s is a date the way MAAS's support_eol validator reads it: three
// dash-separated numbers making a real date, or an ISO date (YYYY-MM-DD, YYYYMMDD).
func isDate(s string) bool {
	if m := ymd.FindStringSubmatch(s); m != nil {
		y, err1 := strconv.Atoi(m[1])
		mo, err2 := strconv.Atoi(m[2])
		d, err3 := strconv.Atoi(m[3])
		if err1 != nil || err2 != nil || err3 != nil || y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 {
			return false
		}
		t := time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC)
		return t.Day() == d
	}
	_, err := time.Parse("20060102", s)
	return err == nil
}

// Layouts for "updated": python's "%a, %d %b %Y %H:%M:%S %z" first, then ISO 8601 forms that
// datetime.fromisoformat reads.
var datetimeLayouts = []string{
	"Mon, _2 Jan 2006 15:04:05 -0700",
	"Mon, _2 Jan 2006 15:04:05 Z07:00",
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

func isDatetime(s string) bool {
	for _, layout := range datetimeLayouts {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}
