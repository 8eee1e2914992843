// Package streamtest generates MAAS-shaped SimpleStreams mirrors for tests: an index and
// products files in every form upstream publishes (.json, clearsigned .sjson, detached
// .json.gpg), and deterministic pseudo-random content generated on the fly, never held in
// memory. A Stream serves itself over HTTP (Handler) or writes itself to a directory (WriteDir),
// and can be damaged on purpose (Corrupt, SetOverride, SetHidden) to test what a mirror does
// with a bad upstream.
package streamtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ssmirror/ssmirror/sign"
)

// Content ids and metadata paths of a generated stream.
const (
	DownloadID      = "com.ubuntu.maas:stable:v3:download"
	BootloaderID    = "com.ubuntu.maas:stable:1:bootloader-download"
	IndexPath       = "streams/v1/index.json"
	SignedIndexPath = "streams/v1/index.sjson"
)

// ProductsPath is the path of the unsigned products file of a content id; the signed forms are
// the same with ".sjson" and ".json.gpg".
func ProductsPath(contentID string) string { return "streams/v1/" + contentID + ".json" }

// Config says what to generate.
type Config struct {
	Releases []string // codenames, e.g. {"focal", "jammy", "noble"}
	Arches   []string // e.g. {"amd64", "arm64"}
	Versions []string // version names, oldest first, e.g. {"20250701", "20250718"}
	// Kernels are the kernel flavours of every release: "ga" and "hwe" give subarches ga-22.04
	// and hwe-22.04; a suffix is kept ("hwe-edge" → hwe-22.04-edge, "ga-lowlatency" →
	// ga-22.04-lowlatency with kflavor lowlatency).
	Kernels []string
	// Bootloaders adds the bootloader products file (pxelinux/i386, grub-efi-signed/amd64,
	// grub-efi/arm64, grub-ieee1275/ppc64el).
	Bootloaders bool
	// Content sizes in bytes; 0 takes the small default (8 KiB, 2 KiB, 4 KiB, 2 KiB).
	SquashfsSize, KernelSize, InitrdSize, BootloaderSize int64
	// Seed makes the content: every file's bytes are a function of (Seed, path).
	Seed int64
}

// SmallConfig is the "small" preset, the one testdata/stream was generated with: 2 releases ×
// 2 arches × 2 versions × ga+hwe, bootloaders, content of a few KB per file.
func SmallConfig() Config {
	return Config{
		Releases:    []string{"jammy", "noble"},
		Arches:      []string{"amd64", "arm64"},
		Versions:    []string{"20250701", "20250718"},
		Kernels:     []string{"ga", "hwe"},
		Bootloaders: true,
		Seed:        1,
	}
}

// BenchConfig is the "bench" preset: about 1.5 GB in about 100 files.
func BenchConfig() Config {
	return Config{
		Releases:       []string{"jammy", "noble"},
		Arches:         []string{"amd64", "arm64"},
		Versions:       []string{"20250701", "20250710", "20250718"},
		Kernels:        []string{"ga", "hwe"},
		Bootloaders:    true,
		SquashfsSize:   80 << 20,
		KernelSize:     4 << 20,
		InitrdSize:     15 << 20,
		BootloaderSize: 1 << 20,
		Seed:           1,
	}
}

type release struct {
	version, title, codename, eol, esmEOL string // esmEOL only for LTS releases
}

var releases = map[string]release{
	"bionic":   {"18.04", "18.04 LTS", "Bionic Beaver", "2023-05-31", "2028-04-01"},
	"focal":    {"20.04", "20.04 LTS", "Focal Fossa", "2025-05-29", "2030-04-01"},
	"jammy":    {"22.04", "22.04 LTS", "Jammy Jellyfish", "2027-04-21", "2032-04-21"},
	"noble":    {"24.04", "24.04 LTS", "Noble Numbat", "2029-05-31", "2034-04-25"},
	"oracular": {"24.10", "24.10", "Oracular Oriole", "2025-07-10", ""},
	"plucky":   {"25.04", "25.04", "Plucky Puffin", "2026-01-15", ""},
	"questing": {"25.10", "25.10", "Questing Quokka", "2026-07-09", ""},
}

// Releases lists the release codenames Config.Releases may name.
func Releases() []string {
	var names []string
	for name := range releases {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Item is one item of a generated products file.
type Item struct {
	ContentID, Product, Version, Name string
	Path                              string
	Size                              int64
	SHA256                            string
}

// Stream is a generated stream. Files and Content describe what the catalogue lists; what is
// served (Handler, WriteDir) can be damaged on purpose with Corrupt, SetOverride and SetHidden.
type Stream struct {
	// Files are the metadata files by path, in every form (.json, .sjson, .json.gpg).
	Files map[string][]byte
	// Content maps every content path to its size.
	Content map[string]int64
	// Items lists every item of every products file, sorted by content id, product, version,
	// item name. Items of different products may share a path (squashfs, manifest).
	Items []Item
	// Updated is the RFC 2822 date written as "updated" everywhere.
	Updated string

	seed   int64
	fixed  map[string][]byte // content given as bytes (manifests)
	sha256 map[string]string // content path → sha256

	mu        sync.Mutex
	flips     map[string]int64
	overrides map[string]func(io.Reader) io.Reader
	hidden    map[string]bool
	requests  map[string]int
}

// Generate builds a stream. With a nil signer only the unsigned .json forms are made.
func Generate(cfg Config, signer *sign.Signer) (*Stream, error) {
	if len(cfg.Releases) == 0 || len(cfg.Arches) == 0 || len(cfg.Versions) == 0 || len(cfg.Kernels) == 0 {
		return nil, fmt.Errorf("streamtest: config needs releases, arches, versions and kernels")
	}
	for _, r := range cfg.Releases {
		if _, ok := releases[r]; !ok {
			return nil, fmt.Errorf("streamtest: unknown release %q (known: %s)", r, strings.Join(Releases(), ", "))
		}
	}
	for _, v := range cfg.Versions {
		if v == "" || strings.ContainsAny(v, "/:") {
			return nil, fmt.Errorf("streamtest: bad version name %q", v)
		}
	}
	for _, k := range cfg.Kernels {
		if k == "" || strings.ContainsAny(k, "/:") {
			return nil, fmt.Errorf("streamtest: bad kernel flavour %q", k)
		}
	}
	cfg = cfg.withDefaults()
	s := &Stream{
		Files:     map[string][]byte{},
		Content:   map[string]int64{},
		Updated:   updatedFor(slices.Max(cfg.Versions)),
		seed:      cfg.Seed,
		fixed:     map[string][]byte{},
		sha256:    map[string]string{},
		flips:     map[string]int64{},
		overrides: map[string]func(io.Reader) io.Reader{},
		hidden:    map[string]bool{},
		requests:  map[string]int{},
	}
	docs := map[string]map[string]any{DownloadID: s.downloadProducts(cfg)}
	if cfg.Bootloaders {
		docs[BootloaderID] = s.bootloaderProducts(cfg)
	}
	// Fill in sizes and hashes, hashing each path once.
	for id, doc := range docs {
		for pname, p := range doc["products"].(map[string]any) {
			for vname, v := range p.(map[string]any)["versions"].(map[string]any) {
				for iname, it := range v.(map[string]any)["items"].(map[string]any) {
					item := it.(map[string]any)
					path := item["path"].(string)
					sum, err := s.hash(path)
					if err != nil {
						return nil, err
					}
					item["size"] = s.Content[path]
					item["sha256"] = sum
					s.Items = append(s.Items, Item{ContentID: id, Product: pname, Version: vname, Name: iname,
						Path: path, Size: s.Content[path], SHA256: sum})
				}
			}
		}
	}
	slices.SortFunc(s.Items, func(a, b Item) int {
		return strings.Compare(a.ContentID+"\x00"+a.Product+"\x00"+a.Version+"\x00"+a.Name,
			b.ContentID+"\x00"+b.Product+"\x00"+b.Version+"\x00"+b.Name)
	})

	index := map[string]any{}
	signedIndex := map[string]any{}
	for id, doc := range docs {
		data, err := marshal(doc)
		if err != nil {
			return nil, err
		}
		if err := s.addFile(ProductsPath(id), data, signer); err != nil {
			return nil, err
		}
		var names []string
		for name := range doc["products"].(map[string]any) {
			names = append(names, name)
		}
		slices.Sort(names)
		entry := func(path string) map[string]any {
			return map[string]any{"path": path, "format": "products:1.0", "datatype": "image-ids",
				"updated": s.Updated, "products": names}
		}
		index[id] = entry(ProductsPath(id))
		signedIndex[id] = entry(strings.TrimSuffix(ProductsPath(id), ".json") + ".sjson")
	}
	data, err := marshal(map[string]any{"format": "index:1.0", "updated": s.Updated, "index": index})
	if err != nil {
		return nil, err
	}
	s.Files[IndexPath] = data
	if signer != nil {
		var sig bytes.Buffer
		if err := signer.DetachSign(&sig, bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("streamtest: signing %s: %w", IndexPath, err)
		}
		s.Files[IndexPath+".gpg"] = sig.Bytes()
		data, err := marshal(map[string]any{"format": "index:1.0", "updated": s.Updated, "index": signedIndex})
		if err != nil {
			return nil, err
		}
		var signed bytes.Buffer
		if err := signer.ClearSign(&signed, bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("streamtest: signing %s: %w", SignedIndexPath, err)
		}
		s.Files[SignedIndexPath] = signed.Bytes()
	}
	return s, nil
}

func setDefault(v *int64, d int64) {
	if *v <= 0 {
		*v = d
	}
}

// updatedFor turns a version name like 20250718 into an RFC 2822 date (08:00 UTC that day).
func updatedFor(version string) string {
	t, err := time.Parse("20060102", version[:min(8, len(version))])
	if err != nil {
		t = time.Date(2025, 7, 24, 8, 1, 49, 0, time.UTC)
	} else {
		t = t.Add(8 * time.Hour)
	}
	return t.Format(time.RFC1123Z)
}

// marshal writes JSON the way upstream does: sorted keys, one-space indent, trailing newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("streamtest: marshal: %w", err)
	}
	return buf.Bytes(), nil
}

// addFile adds a products file in its three forms.
func (s *Stream) addFile(path string, data []byte, signer *sign.Signer) error {
	s.Files[path] = data
	if signer == nil {
		return nil
	}
	var signed, sig bytes.Buffer
	if err := signer.ClearSign(&signed, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("streamtest: clearsigning %s: %w", path, err)
	}
	if err := signer.DetachSign(&sig, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("streamtest: signing %s: %w", path, err)
	}
	s.Files[strings.TrimSuffix(path, ".json")+".sjson"] = signed.Bytes()
	s.Files[path+".gpg"] = sig.Bytes()
	return nil
}

// addRandom registers a generated content path; a path already registered keeps its size.
func (s *Stream) addRandom(path string, size int64) {
	if _, ok := s.Content[path]; !ok {
		s.Content[path] = size
	}
}

func (s *Stream) hash(path string) (string, error) {
	if sum, ok := s.sha256[path]; ok {
		return sum, nil
	}
	h := sha256.New()
	n, err := io.Copy(h, s.OpenContent(path))
	if err != nil {
		return "", fmt.Errorf("streamtest: hashing %s: %w", path, err)
	}
	if n != s.Content[path] {
		return "", fmt.Errorf("streamtest: %s: generated %d bytes, expected %d", path, n, s.Content[path])
	}
	sum := hex.EncodeToString(h.Sum(nil))
	s.sha256[path] = sum
	return sum, nil
}

// kernel describes one Config.Kernels entry for one release.
func kernel(k string, rel release) (subarch, kflavor, kpackage string) {
	base, suffix, _ := strings.Cut(k, "-")
	subarch = base + "-" + rel.version
	kflavor = "generic"
	if suffix == "lowlatency" {
		kflavor = "lowlatency"
	}
	if suffix != "" {
		subarch += "-" + suffix
	}
	kpackage = "linux-" + kflavor
	if base != "ga" {
		kpackage += "-" + base + "-" + rel.version
		if suffix != "" && suffix != "lowlatency" {
			kpackage += "-" + suffix
		}
	}
	return subarch, kflavor, kpackage
}

func (s *Stream) downloadProducts(cfg Config) map[string]any {
	products := map[string]any{}
	for _, relName := range cfg.Releases {
		rel := releases[relName]
		for _, arch := range cfg.Arches {
			for _, k := range cfg.Kernels {
				subarch, kflavor, kpackage := kernel(k, rel)
				versions := map[string]any{}
				for _, ver := range cfg.Versions {
					dir := relName + "/" + arch + "/" + ver
					kdir := dir + "/" + subarch + "/" + kflavor
					s.addRandom(kdir+"/boot-kernel", cfg.KernelSize)
					s.addRandom(kdir+"/boot-initrd", cfg.InitrdSize)
					s.addRandom(dir+"/squashfs", cfg.SquashfsSize)
					s.addManifest(dir+"/squashfs.manifest", relName)
					versions[ver] = map[string]any{"items": map[string]any{
						"boot-kernel": map[string]any{"ftype": "boot-kernel", "kpackage": kpackage, "path": kdir + "/boot-kernel"},
						"boot-initrd": map[string]any{"ftype": "boot-initrd", "kpackage": kpackage, "path": kdir + "/boot-initrd"},
						"squashfs":    map[string]any{"ftype": "squashfs", "path": dir + "/squashfs"},
						"manifest":    map[string]any{"ftype": "manifest", "path": dir + "/squashfs.manifest"},
					}}
				}
				name := fmt.Sprintf("com.ubuntu.maas.stable:v3:boot:%s:%s:%s", rel.version, arch, subarch)
				// Every product carries its own os and label, as images.maas.io's do: MAAS reads
				// a product's own keys only (it does not inherit from the top level).
				prod := map[string]any{
					"arch":             arch,
					"kflavor":          kflavor,
					"krel":             relName,
					"label":            "stable",
					"os":               "ubuntu",
					"release":          relName,
					"release_codename": rel.codename,
					"release_title":    rel.title,
					"subarch":          subarch,
					"subarches":        "generic," + subarch,
					"support_eol":      rel.eol,
					"version":          rel.version,
					"versions":         versions,
				}
				if rel.esmEOL != "" {
					prod["support_esm_eol"] = rel.esmEOL
				}
				products[name] = prod
			}
		}
	}
	return map[string]any{
		"content_id": DownloadID,
		"datatype":   "image-ids",
		"format":     "products:1.0",
		"updated":    s.Updated,
		"products":   products,
	}
}

// addManifest registers a small text manifest (a package list) for a squashfs.
func (s *Stream) addManifest(path, rel string) {
	if _, ok := s.fixed[path]; ok {
		return
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%d\x00%s", s.seed, path))
	r := rand.New(rand.NewChaCha8(sum))
	var b bytes.Buffer
	for i := range 40 {
		fmt.Fprintf(&b, "package-%02d\t%d.%d.%d-%dubuntu%d~%s\n", i, r.IntN(10), r.IntN(20), r.IntN(100), r.IntN(9)+1, r.IntN(5)+1, rel)
	}
	s.fixed[path] = b.Bytes()
	s.Content[path] = int64(b.Len())
}

type bootloader struct {
	os, typ, arch, arches string
	// items are the item names, as images.maas.io names them (each also the source package);
	// the archive of item x is x.tar.xz.
	items []string
}

// bootloaders are the products of images.maas.io's bootloader-download file that MAAS always
// selects, in their real shape: grub-efi on arm64 ships the signed grub and shim too.
var bootloaders = []bootloader{
	{"pxelinux", "pxe", "i386", "i386,amd64", []string{"syslinux"}},
	{"grub-efi-signed", "uefi", "amd64", "amd64", []string{"grub2-signed", "shim-signed"}},
	{"grub-efi", "uefi", "arm64", "arm64", []string{"grub2-signed", "shim-signed"}},
	{"grub-ieee1275", "open-firmware", "ppc64el", "ppc64el,ppc64", []string{"grub2"}},
}

func (s *Stream) bootloaderProducts(cfg Config) map[string]any {
	srcRelease := slices.Max(cfg.Releases)
	products := map[string]any{}
	for _, bl := range bootloaders {
		versions := map[string]any{}
		for i, ver := range cfg.Versions {
			items := map[string]any{}
			for _, name := range bl.items {
				path := fmt.Sprintf("bootloaders/%s/%s/%s/%s.tar.xz", bl.typ, bl.arch, ver, name)
				s.addRandom(path, cfg.BootloaderSize)
				items[name] = map[string]any{
					"ftype":       "archive.tar.xz",
					"path":        path,
					"src_package": name,
					"src_release": srcRelease,
					"src_version": fmt.Sprintf("2.%d-0ubuntu%d", 10+i, i+1),
				}
			}
			versions[ver] = map[string]any{"items": items}
		}
		name := fmt.Sprintf("com.ubuntu.maas.stable:1:%s:%s:%s", bl.os, bl.typ, bl.arch)
		products[name] = map[string]any{
			"os":              bl.os,
			"arch":            bl.arch,
			"arches":          bl.arches,
			"bootloader-type": bl.typ,
			"label":           "stable",
			"versions":        versions,
		}
	}
	return map[string]any{
		"content_id": BootloaderID,
		"datatype":   "image-ids",
		"format":     "products:1.0",
		"updated":    s.Updated,
		"products":   products,
	}
}

// OpenContent returns the content at path as the catalogue describes it (not affected by
// Corrupt or SetOverride), generated on the fly. An unknown path gives a reader that fails.
func (s *Stream) OpenContent(path string) io.Reader {
	if b, ok := s.fixed[path]; ok {
		return bytes.NewReader(b)
	}
	size, ok := s.Content[path]
	if !ok {
		return errReader{fmt.Errorf("streamtest: %s is not a content path", path)}
	}
	return newGenContent(s.seed, path, size).reader()
}

// SHA256 is the lowercase hex sha256 of the content at path ("" for an unknown path).
func (s *Stream) SHA256(path string) string { return s.sha256[path] }

// TotalSize is the sum of the sizes of all content paths (each counted once).
func (s *Stream) TotalSize() int64 {
	var n int64
	for _, size := range s.Content {
		n += size
	}
	return n
}

// withDefaults fills zero sizes with the small defaults.
func (c Config) withDefaults() Config {
	setDefault(&c.SquashfsSize, 8<<10)
	setDefault(&c.KernelSize, 2<<10)
	setDefault(&c.InitrdSize, 4<<10)
	setDefault(&c.BootloaderSize, 2<<10)
	return c
}

// GeneratedSize is the total size of the generated (pseudo-random) content c describes: every
// file but the small text manifests.
func (c Config) GeneratedSize() int64 {
	c = c.withDefaults()
	groups := int64(len(c.Releases) * len(c.Arches) * len(c.Versions))
	n := groups * (c.SquashfsSize + int64(len(c.Kernels))*(c.KernelSize+c.InitrdSize))
	if c.Bootloaders {
		files := 0
		for _, bl := range bootloaders {
			files += len(bl.items)
		}
		n += int64(files*len(c.Versions)) * c.BootloaderSize
	}
	return n
}

// ScaledTo returns c with every content size multiplied by the same factor, so that
// GeneratedSize is about total.
func (c Config) ScaledTo(total int64) Config {
	c = c.withDefaults()
	cur := c.GeneratedSize()
	if cur == 0 || total <= 0 {
		return c
	}
	f := float64(total) / float64(cur)
	for _, p := range []*int64{&c.SquashfsSize, &c.KernelSize, &c.InitrdSize, &c.BootloaderSize} {
		*p = max(1, int64(float64(*p)*f))
	}
	return c
}
