package maasmodel

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/streams"
)

// Documents in the shape images.maas.io publishes (values made up, sizes small).

const ubuntuDoc = `{
 "content_id": "com.ubuntu.maas:stable:v3:download",
 "datatype": "image-ids",
 "format": "products:1.0",
 "updated": "Thu, 24 Jul 2025 09:01:42 +0000",
 "products": {
  "com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04": {
   "arch": "amd64", "kflavor": "generic", "krel": "noble", "label": "stable", "os": "ubuntu",
   "release": "noble", "release_codename": "Noble Numbat", "release_title": "24.04 LTS",
   "subarch": "ga-24.04", "subarches": "generic,ga-24.04", "support_eol": "2029-05-31",
   "support_esm_eol": "2034-04-25", "version": "24.04",
   "versions": {
    "20250718": {
     "items": {
      "boot-initrd": {"ftype": "boot-initrd", "kpackage": "linux-generic", "path": "noble/amd64/20250718/ga-24.04/generic/boot-initrd", "sha256": "aa", "size": 10},
      "boot-kernel": {"ftype": "boot-kernel", "kpackage": "linux-generic", "path": "noble/amd64/20250718/ga-24.04/generic/boot-kernel", "sha256": "bb", "size": 11},
      "manifest": {"ftype": "manifest", "path": "noble/amd64/20250718/squashfs.manifest", "sha256": "cc", "size": 12},
      "squashfs": {"ftype": "squashfs", "path": "noble/amd64/20250718/squashfs", "sha256": "dd", "size": 13}
     }
    }
   }
  }
 }
}`

const bootloaderDoc = `{
 "content_id": "com.ubuntu.maas:stable:1:bootloader-download",
 "datatype": "image-ids",
 "format": "products:1.0",
 "updated": "Thu, 24 Jul 2025 09:01:42 +0000",
 "products": {
  "com.ubuntu.maas.stable:1:grub-efi-signed:uefi:amd64": {
   "arch": "amd64", "arches": "amd64", "bootloader-type": "uefi", "label": "stable", "os": "grub-efi-signed",
   "versions": {
    "20250718.0": {
     "items": {
      "grub2-signed": {"ftype": "archive.tar.xz", "path": "bootloaders/uefi/amd64/20250718.0/grub2-signed.tar.xz", "sha256": "aa", "size": 10,
                       "src_package": "grub2-signed", "src_release": "noble", "src_version": "1.202+2.12-1ubuntu7"},
      "shim-signed": {"ftype": "archive.tar.xz", "path": "bootloaders/uefi/amd64/20250718.0/shim-signed.tar.xz", "sha256": "bb", "size": 11,
                      "src_package": "shim-signed", "src_release": "noble", "src_version": "1.58+15.8-0ubuntu1"}
     }
    }
   }
  }
 }
}`

const centosDoc = `{
 "content_id": "com.ubuntu.maas:stable:centos-bases-download",
 "datatype": "image-ids",
 "format": "products:1.0",
 "updated": "2025-07-24T09:01:42+00:00",
 "products": {
  "com.ubuntu.maas.stable:centos-bases:8:amd64": {
   "arch": "amd64", "label": "stable", "os": "centos", "release": "centos8", "release_title": "CentOS 8",
   "subarch": "generic", "subarches": "generic", "support_eol": "2024-05-31", "version": "8",
   "versions": {
    "20210603.0": {
     "items": {
      "manifest": {"ftype": "manifest", "path": "centos/8/amd64/20210603.0/root-tgz.manifest", "sha256": "aa", "size": 10},
      "root-tgz": {"ftype": "root-tgz", "path": "centos/8/amd64/20210603.0/root-tgz", "sha256": "bb", "size": 11}
     }
    }
   }
  }
 }
}`

func parse(t *testing.T, doc string) *streams.Products {
	t.Helper()
	p, err := streams.ParseProducts([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAccepts(t *testing.T) {
	for doc, want := range map[string]Model{ubuntuDoc: MultiFile, bootloaderDoc: Bootloader, centosDoc: SingleFile} {
		m, err := CheckProducts(parse(t, doc))
		if err != nil || m != want {
			t.Errorf("%s: got %v, %v; want %v", parse(t, doc).ContentID(), m, err, want)
		}
	}
}

// edit changes a parsed document; set(keys…, value) writes a raw value (nil deletes).
type edit func(p *streams.Products)

const (
	ubuntuProduct = "com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04"
	blProduct     = "com.ubuntu.maas.stable:1:grub-efi-signed:uefi:amd64"
)

func setProduct(name, key, raw string) edit {
	return func(p *streams.Products) {
		if raw == "" {
			delete(p.Products[name].Attrs, key)
		} else {
			p.Products[name].Attrs[key] = json.RawMessage(raw)
		}
	}
}

func setItem(product, item, key, raw string) edit {
	return func(p *streams.Products) {
		for _, v := range p.Products[product].Versions {
			if raw == "" {
				delete(v.Items[item].Attrs, key)
			} else {
				v.Items[item].Attrs[key] = json.RawMessage(raw)
			}
		}
	}
}

func dropItem(product, item string) edit {
	return func(p *streams.Products) {
		for _, v := range p.Products[product].Versions {
			delete(v.Items, item)
		}
	}
}

func renameItem(product, from, to string) edit {
	return func(p *streams.Products) {
		for _, v := range p.Products[product].Versions {
			v.Items[to] = v.Items[from]
			delete(v.Items, from)
		}
	}
}

func TestRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		edit edit
		want string // in the error
	}{
		{"label inherited from the top", ubuntuDoc, func(p *streams.Products) {
			p.Attrs["label"] = json.RawMessage(`"stable"`)
			setProduct(ubuntuProduct, "label", "")(p)
		}, "product " + ubuntuProduct + ": no label"},
		{"os missing", ubuntuDoc, setProduct(ubuntuProduct, "os", ""), ": no os"},
		{"arch not a string", ubuntuDoc, setProduct(ubuntuProduct, "arch", "7"), "arch is 7, not a string"},
		{"no release_title", ubuntuDoc, setProduct(ubuntuProduct, "release_title", ""), "no release_title"},
		{"subarches null", ubuntuDoc, setProduct(ubuntuProduct, "subarches", "null"), "subarches is null"},
		{"bad support_eol", ubuntuDoc, setProduct(ubuntuProduct, "support_eol", `"2029-02-30"`), "support_eol \"2029-02-30\" is not a date"},
		{"kflavor a number", ubuntuDoc, setProduct(ubuntuProduct, "kflavor", "1"), "kflavor is 1, not a string"},
		{"product_name key", ubuntuDoc, setProduct(ubuntuProduct, "product_name", `"x"`), "product_name key"},
		{"no manifest", ubuntuDoc, dropItem(ubuntuProduct, "manifest"), "version 20250718: no manifest item"},
		{"no boot-kernel", ubuntuDoc, dropItem(ubuntuProduct, "boot-kernel"), "no boot-kernel item"},
		{"no squashfs", ubuntuDoc, dropItem(ubuntuProduct, "squashfs"), "neither a squashfs nor a root-image.gz item"},
		{"size a string", ubuntuDoc, setItem(ubuntuProduct, "squashfs", "size", `"13"`), "item squashfs: size is \"13\", not an integer"},
		{"size a fraction", ubuntuDoc, setItem(ubuntuProduct, "squashfs", "size", `13.5`), "not an integer"},
		{"no sha256", ubuntuDoc, setItem(ubuntuProduct, "boot-initrd", "sha256", ""), "item boot-initrd: no sha256"},
		{"ftype only inherited", ubuntuDoc, setItem(ubuntuProduct, "manifest", "ftype", ""), "item manifest: no ftype"},
		{"kpackage a number", ubuntuDoc, setItem(ubuntuProduct, "boot-kernel", "kpackage", "5"), "kpackage is 5"},
		{"version support_eol", ubuntuDoc, func(p *streams.Products) {
			p.Products[ubuntuProduct].Versions["20250718"].Attrs["support_eol"] = json.RawMessage(`"soon"`)
		}, "version 20250718: support_eol \"soon\" is not a date"},
		{"version_name key", ubuntuDoc, func(p *streams.Products) {
			p.Products[ubuntuProduct].Versions["20250718"].Attrs["version_name"] = json.RawMessage(`"x"`)
		}, "version_name key"},
		{"no versions", ubuntuDoc, func(p *streams.Products) {
			p.Products[ubuntuProduct].Versions = map[string]*streams.Version{}
		}, "no versions"},
		{"no products", ubuntuDoc, func(p *streams.Products) { p.Products = map[string]*streams.Product{} }, "document: no products"},
		{"bad datatype", ubuntuDoc, func(p *streams.Products) { p.Attrs["datatype"] = json.RawMessage(`"ids"`) }, "neither image-ids nor image-downloads"},
		{"bad updated", ubuntuDoc, func(p *streams.Products) { p.Attrs["updated"] = json.RawMessage(`"yesterday"`) }, "updated \"yesterday\" is not a date"},
		{"no content_id", ubuntuDoc, func(p *streams.Products) { delete(p.Attrs, "content_id") }, "document: no content_id"},
		{"bootloader items named after files", bootloaderDoc, func(p *streams.Products) {
			renameItem(blProduct, "grub2-signed", "grub2-signed.tar.xz")(p)
			renameItem(blProduct, "shim-signed", "shim-signed.tar.xz")(p)
		}, "none of the items grub2-signed, shim-signed, grub2, syslinux"},
		{"bootloader without src_version", bootloaderDoc, setItem(blProduct, "shim-signed", "src_version", ""), "item shim-signed: no src_version"},
		{"bootloader without arches", bootloaderDoc, setProduct(blProduct, "arches", ""), "no arches"},
		{"bootloader without bootloader-type", bootloaderDoc, setProduct(blProduct, "bootloader-type", ""), "no bootloader-type"},
		{"bootloader without label", bootloaderDoc, setProduct(blProduct, "label", ""), "no label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := parse(t, tc.doc)
			tc.edit(p)
			m, err := CheckProducts(p)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("accepted as %v", m)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not say %q:\n%v", tc.want, err)
			}
		})
	}
}

// A version may give root-image.gz instead of squashfs; a null optional item is absent; items
// the models do not name (boot-dtb) and unknown keys are ignored.
func TestOptional(t *testing.T) {
	p := parse(t, ubuntuDoc)
	renameItem(ubuntuProduct, "squashfs", "root-image.gz")(p)
	p.Products[ubuntuProduct].Versions["20250718"].Items["boot-dtb"] = &streams.ItemEntry{Attrs: map[string]json.RawMessage{"ftype": json.RawMessage(`"boot-dtb"`)}}
	p.Products[ubuntuProduct].Versions["20250718"].Attrs["squashfs"] = json.RawMessage(`null`)
	p.Products[ubuntuProduct].Attrs["krel"] = json.RawMessage(`null`)
	p.Products[ubuntuProduct].Attrs["whatever"] = json.RawMessage(`[1,2]`)
	if m, err := CheckProducts(p); err != nil || m != MultiFile {
		t.Fatalf("got %v, %v", m, err)
	}
	// A version whose items sit directly in the version (no "items" key) is read the same way.
	for _, v := range p.Products[ubuntuProduct].Versions {
		for name, it := range v.Items {
			raw, _ := json.Marshal(it.Attrs)
			v.Attrs[name] = raw
		}
		v.Items = map[string]*streams.ItemEntry{}
	}
	if m, err := CheckProducts(p); err != nil || m != MultiFile {
		t.Fatalf("items as version keys: got %v, %v", m, err)
	}
}

func TestErrorListsEverything(t *testing.T) {
	p := parse(t, ubuntuDoc)
	delete(p.Attrs, "datatype")
	for _, key := range []string{"os", "label", "arch", "release", "version", "subarch", "subarches", "release_title"} {
		delete(p.Products[ubuntuProduct].Attrs, key)
	}
	_, err := CheckProducts(p)
	var e *Error
	if !errors.As(err, &e) || e.Model != MultiFile || len(e.Problems) != 9 {
		t.Fatalf("%#v", err)
	}
	if !strings.Contains(err.Error(), "and 1 more") {
		t.Fatalf("message not capped: %v", err)
	}
}

func TestDates(t *testing.T) {
	for s, want := range map[string]bool{
		"Thu, 24 Jul 2025 09:01:42 +0000": true,
		"Thu, 4 Jul 2025 09:01:42 +0000":  true,
		"2025-07-24T09:01:42+00:00":       true,
		"2025-07-24T09:01:42Z":            true,
		"2025-07-24 09:01:42":             true,
		"2025-07-24":                      true,
		"24 Jul 2025":                     false,
		"":                                false,
	} {
		if got := isDatetime(s); got != want {
			t.Errorf("isDatetime(%q) = %v", s, got)
		}
	}
	for s, want := range map[string]bool{"2027-04-21": true, "2027-4-1": true, "20270421": true, "2027-02-29": false, "2028-02-29": true, "2027-13-01": false, "2027/04/21": false, "": false} {
		if got := isDate(s); got != want {
			t.Errorf("isDate(%q) = %v", s, got)
		}
	}
}

const indexDoc = `{
 "format": "index:1.0",
 "updated": "Thu, 24 Jul 2025 08:01:49 +0000",
 "index": {
  "com.ubuntu.maas:stable:v3:download": {
   "datatype": "image-ids", "format": "products:1.0",
   "path": "streams/v1/com.ubuntu.maas:stable:v3:download.json",
   "products": ["com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04"],
   "updated": "Thu, 24 Jul 2025 08:01:49 +0000"
  }
 }
}`

func TestIndex(t *testing.T) {
	if err := CheckIndexJSON([]byte(indexDoc)); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func(ix *streams.Index)
		want string
	}{
		"no updated":       {func(ix *streams.Index) { ix.Updated = "" }, "index: no updated"},
		"entry no updated": {func(ix *streams.Index) { ix.Index["com.ubuntu.maas:stable:v3:download"].Updated = "" }, "no updated"},
		"entry no path":    {func(ix *streams.Index) { ix.Index["com.ubuntu.maas:stable:v3:download"].Path = "" }, "no path"},
		"entry no products": {func(ix *streams.Index) { ix.Index["com.ubuntu.maas:stable:v3:download"].Products = nil },
			"no products list"},
		"entry bad datatype": {func(ix *streams.Index) { ix.Index["com.ubuntu.maas:stable:v3:download"].Datatype = "x" },
			"neither image-ids"},
		"no entries": {func(ix *streams.Index) { ix.Index = nil }, "no entries"},
	} {
		ix, err := streams.ParseIndex([]byte(indexDoc))
		if err != nil {
			t.Fatal(err)
		}
		tc.edit(ix)
		if err := CheckIndex(ix); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestCheckMirror(t *testing.T) {
	files := map[string]string{
		"streams/v1/index.json":                              indexDoc,
		"streams/v1/com.ubuntu.maas:stable:v3:download.json": ubuntuDoc,
	}
	read := func(path string) ([]byte, error) {
		s, ok := files[path]
		if !ok {
			return nil, errors.New(path + ": not found")
		}
		return []byte(s), nil
	}
	models, err := CheckMirror(read, "streams/v1/index.json")
	if err != nil || models["com.ubuntu.maas:stable:v3:download"] != MultiFile {
		t.Fatalf("%v %v", models, err)
	}
	files["streams/v1/com.ubuntu.maas:stable:v3:download.json"] = strings.Replace(ubuntuDoc, `"label": "stable",`, "", 1)
	if _, err := CheckMirror(read, "streams/v1/index.json"); err == nil || !strings.Contains(err.Error(), "com.ubuntu.maas:stable:v3:download.json: products file") {
		t.Fatalf("%v", err)
	}
}
