package streamtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/sign"
)

func testSigner(t *testing.T) (*sign.Signer, *sign.Keyring) {
	t.Helper()
	f, err := os.Open("../../testdata/keys/test-signing-key.asc")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	signer, err := sign.LoadSigner(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := sign.LoadKeyring("../../testdata/keys/test-keyring.gpg")
	if err != nil {
		t.Fatal(err)
	}
	return signer, kr
}

func sum(r io.Reader) (string, int64) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

type productsDoc struct {
	ContentID string `json:"content_id"`
	Format    string `json:"format"`
	Datatype  string `json:"datatype"`
	Updated   string `json:"updated"`
	Label     string `json:"label"`
	OS        string `json:"os"`
	Products  map[string]struct {
		Label    string `json:"label"`
		Arch     string `json:"arch"`
		Release  string `json:"release"`
		Subarch  string `json:"subarch"`
		OS       string `json:"os"`
		Version  string `json:"version"`
		Versions map[string]struct {
			Items map[string]struct {
				Ftype  string `json:"ftype"`
				Path   string `json:"path"`
				Size   int64  `json:"size"`
				SHA256 string `json:"sha256"`
			} `json:"items"`
		} `json:"versions"`
	} `json:"products"`
}

type indexDoc struct {
	Format  string `json:"format"`
	Updated string `json:"updated"`
	Index   map[string]struct {
		Path     string   `json:"path"`
		Format   string   `json:"format"`
		Datatype string   `json:"datatype"`
		Products []string `json:"products"`
	} `json:"index"`
}

func TestGenerateSmall(t *testing.T) {
	signer, kr := testSigner(t)
	s, err := Generate(SmallConfig(), signer)
	if err != nil {
		t.Fatal(err)
	}
	var ix indexDoc
	if err := json.Unmarshal(s.Files[IndexPath], &ix); err != nil {
		t.Fatal(err)
	}
	if ix.Format != "index:1.0" || len(ix.Index) != 2 || ix.Updated != "Fri, 18 Jul 2025 08:00:00 +0000" {
		t.Fatalf("index: %+v", ix)
	}
	items := 0
	for id, entry := range ix.Index {
		if entry.Path != ProductsPath(id) || entry.Format != "products:1.0" || entry.Datatype != "image-ids" {
			t.Errorf("index entry %s: %+v", id, entry)
		}
		var doc productsDoc
		if err := json.Unmarshal(s.Files[entry.Path], &doc); err != nil {
			t.Fatalf("%s: %v", entry.Path, err)
		}
		if doc.ContentID != id || doc.Format != "products:1.0" || doc.Label != "" || doc.OS != "" {
			t.Errorf("%s: top level %+v", entry.Path, doc)
		}
		if len(doc.Products) != len(entry.Products) {
			t.Errorf("%s: %d products, index lists %d", id, len(doc.Products), len(entry.Products))
		}
		for _, name := range entry.Products {
			if _, ok := doc.Products[name]; !ok {
				t.Errorf("index lists %s, not in %s", name, id)
			}
		}
		squashfs := map[string]int{}
		for pname, p := range doc.Products {
			// MAAS reads os and label from the product itself, never inherited.
			if id == DownloadID && p.OS != "ubuntu" || id == BootloaderID && p.OS == "" || p.Label != "stable" {
				t.Errorf("%s: os %q, label %q", pname, p.OS, p.Label)
			}
			for vname, v := range p.Versions {
				for iname, it := range v.Items {
					items++
					if it.Size != s.Content[it.Path] || it.SHA256 != s.SHA256(it.Path) {
						t.Errorf("%s %s %s: size/sha256 %d %s, stream says %d %s", pname, vname, iname, it.Size, it.SHA256, s.Content[it.Path], s.SHA256(it.Path))
					}
					gotSum, gotSize := sum(s.OpenContent(it.Path))
					if gotSum != it.SHA256 || gotSize != it.Size {
						t.Errorf("%s: content %d %s, catalogue %d %s", it.Path, gotSize, gotSum, it.Size, it.SHA256)
					}
					if iname == "squashfs" {
						squashfs[it.Path]++
						if want := p.Release + "/" + p.Arch + "/" + vname + "/squashfs"; it.Path != want {
							t.Errorf("squashfs path %s, want %s", it.Path, want)
						}
					}
				}
			}
		}
		if id == DownloadID {
			// 2 releases × 2 arches × 2 versions, each squashfs shared by ga and hwe.
			if len(squashfs) != 8 {
				t.Errorf("%d squashfs paths, want 8", len(squashfs))
			}
			for path, n := range squashfs {
				if n != 2 {
					t.Errorf("%s referenced by %d products, want 2 (ga and hwe)", path, n)
				}
			}
			if _, ok := doc.Products["com.ubuntu.maas.stable:v3:boot:22.04:amd64:hwe-22.04"]; !ok {
				t.Errorf("no hwe-22.04 product for jammy/amd64")
			}
		}
	}
	if items != len(s.Items) {
		t.Errorf("%d items in the files, %d in Items", items, len(s.Items))
	}
	// 8 groups × (squashfs + manifest + 2 × (kernel + initrd)) + 6 bootloader archives × 2
	// versions (syslinux; grub2-signed and shim-signed on amd64 and on arm64; grub2 on ppc64el).
	if len(s.Content) != 8*6+6*2 {
		t.Errorf("%d content paths, want %d", len(s.Content), 8*6+6*2)
	}
	if total := s.TotalSize(); total >= 1<<20 {
		t.Errorf("small preset is %d bytes", total)
	}

	// Signatures.
	for _, id := range []string{DownloadID, BootloaderID} {
		path := ProductsPath(id)
		body, err := sign.VerifyClearsigned(path, s.Files[strings.TrimSuffix(path, ".json")+".sjson"], kr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, s.Files[path]) {
			t.Errorf("%s: clearsigned body differs from the .json", path)
		}
		if err := sign.VerifyDetached(path, s.Files[path], s.Files[path+".gpg"], kr); err != nil {
			t.Fatal(err)
		}
	}
	if err := sign.VerifyDetached(IndexPath, s.Files[IndexPath], s.Files[IndexPath+".gpg"], kr); err != nil {
		t.Fatal(err)
	}
	body, err := sign.VerifyClearsigned(SignedIndexPath, s.Files[SignedIndexPath], kr)
	if err != nil {
		t.Fatal(err)
	}
	var six indexDoc
	if err := json.Unmarshal(body, &six); err != nil {
		t.Fatal(err)
	}
	for id, entry := range six.Index {
		if entry.Path != "streams/v1/"+id+".sjson" {
			t.Errorf("signed index path %s", entry.Path)
		}
		if _, ok := s.Files[entry.Path]; !ok {
			t.Errorf("signed index points at missing %s", entry.Path)
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, err := Generate(SmallConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(SmallConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Files) != 3 { // unsigned: index + 2 products files
		t.Fatalf("unsigned stream has %d metadata files", len(a.Files))
	}
	for p, data := range a.Files {
		if !bytes.Equal(data, b.Files[p]) {
			t.Errorf("%s differs between two runs", p)
		}
	}
	cfg := SmallConfig()
	cfg.Seed = 2
	c, err := Generate(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p := range a.Content {
		if a.SHA256(p) != b.SHA256(p) {
			t.Errorf("%s differs between two runs", p)
		}
		if a.SHA256(p) == c.SHA256(p) && !strings.HasSuffix(p, ".manifest") {
			// manifests are text from a small alphabet, but their seeds differ too
			t.Errorf("%s is the same with another seed", p)
		}
	}
	// Formatting: sorted keys, one-space indent, trailing newline.
	data := a.Files[IndexPath]
	if !bytes.HasPrefix(data, []byte("{\n \"format\": \"index:1.0\",\n \"index\": {")) || !bytes.HasSuffix(data, []byte("}\n")) {
		t.Errorf("index is not formatted as expected:\n%.200s", data)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, mut := range []func(*Config){
		func(c *Config) { c.Releases = []string{"warty"} },
		func(c *Config) { c.Arches = nil },
		func(c *Config) { c.Versions = []string{"a/b"} },
		func(c *Config) { c.Kernels = nil },
	} {
		cfg := SmallConfig()
		mut(&cfg)
		if _, err := Generate(cfg, nil); err == nil {
			t.Errorf("Generate accepted %+v", cfg)
		}
	}
}

func TestKernelFlavours(t *testing.T) {
	cfg := SmallConfig()
	cfg.Releases = []string{"jammy"}
	cfg.Arches = []string{"amd64"}
	cfg.Kernels = []string{"ga", "hwe-edge", "ga-lowlatency"}
	cfg.Bootloaders = false
	s, err := Generate(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"jammy/amd64/20250718/ga-22.04/generic/boot-kernel":               true,
		"jammy/amd64/20250718/hwe-22.04-edge/generic/boot-kernel":         true,
		"jammy/amd64/20250718/ga-22.04-lowlatency/lowlatency/boot-kernel": true,
	}
	for p := range want {
		if _, ok := s.Content[p]; !ok {
			t.Errorf("no %s", p)
		}
	}
	if len(s.Files) != 2 {
		t.Errorf("%d metadata files without bootloaders, want 2", len(s.Files))
	}
}

func TestOpenContentRandomAccess(t *testing.T) {
	s, err := Generate(Config{Releases: []string{"noble"}, Arches: []string{"amd64"}, Versions: []string{"1"},
		Kernels: []string{"ga"}, SquashfsSize: 100_003}, nil)
	if err != nil {
		t.Fatal(err)
	}
	full, err := io.ReadAll(s.OpenContent("noble/amd64/1/squashfs"))
	if err != nil || len(full) != 100_003 {
		t.Fatalf("%d bytes, %v", len(full), err)
	}
	r := newGenContent(s.seed, "noble/amd64/1/squashfs", 100_003).reader()
	for _, off := range []int64{0, 1, 15, 16, 17, 4099, 100_002} {
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.LimitReader(r, 1000))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, full[off:min(off+1000, int64(len(full)))]) {
			t.Errorf("bytes from %d differ from a sequential read", off)
		}
	}
	if _, err := io.ReadAll(s.OpenContent("no/such/path")); err == nil {
		t.Error("OpenContent of an unknown path did not fail")
	}
}

func get(t *testing.T, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestHandler(t *testing.T) {
	s, err := Generate(SmallConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	resp, body := get(t, srv.URL+"/"+IndexPath, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, s.Files[IndexPath]) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("index: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	// ':' in the path, escaped or not.
	for _, u := range []string{srv.URL + "/streams/v1/com.ubuntu.maas:stable:v3:download.json", srv.URL + "/streams/v1/com.ubuntu.maas%3Astable%3Av3%3Adownload.json"} {
		if resp, _ := get(t, u, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %s", u, resp.Status)
		}
	}
	path := "jammy/amd64/20250718/squashfs"
	full, _ := io.ReadAll(s.OpenContent(path))
	resp, body = get(t, srv.URL+"/"+path, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, full) || resp.ContentLength != int64(len(full)) {
		t.Fatalf("content: %s, %d bytes, Content-Length %d", resp.Status, len(body), resp.ContentLength)
	}
	resp, body = get(t, srv.URL+"/"+path, http.Header{"Range": {"bytes=1000-"}})
	if resp.StatusCode != 206 || !bytes.Equal(body, full[1000:]) {
		t.Fatalf("range: %s, %d bytes", resp.Status, len(body))
	}
	head, err := http.Head(srv.URL + "/" + path)
	if err != nil || head.StatusCode != 200 || head.ContentLength != int64(len(full)) {
		t.Fatalf("HEAD: %v %v", head, err)
	}
	head.Body.Close()
	if resp, _ := get(t, srv.URL+"/nothing/here", nil); resp.StatusCode != 404 {
		t.Fatalf("unknown path: %s", resp.Status)
	}
	if n := s.Requests(path); n != 2 {
		t.Errorf("Requests(%s) = %d, want 2 (HEAD not counted)", path, n)
	}
	if n := s.ContentRequests(); n != 2 {
		t.Errorf("ContentRequests = %d, want 2", n)
	}
	s.ResetRequests()
	if s.ContentRequests() != 0 {
		t.Error("ResetRequests did not reset")
	}

	// Damage.
	if err := s.Corrupt(path); err != nil {
		t.Fatal(err)
	}
	_, body = get(t, srv.URL+"/"+path, nil)
	if len(body) != len(full) || bytes.Equal(body, full) {
		t.Fatalf("corrupted content: %d bytes, equal %v", len(body), bytes.Equal(body, full))
	}
	if got, _ := sum(bytes.NewReader(body)); got == s.SHA256(path) {
		t.Fatal("corrupted content has the catalogue's sha256")
	}
	_, tail := get(t, srv.URL+"/"+path, http.Header{"Range": {fmt.Sprintf("bytes=%d-", len(full)/2)}})
	if !bytes.Equal(tail, body[len(full)/2:]) {
		t.Fatal("a range of corrupted content differs from the full corrupted body")
	}
	if got, _ := sum(s.OpenContent(path)); got != s.SHA256(path) {
		t.Fatal("OpenContent affected by Corrupt")
	}
	s.SetOverride(path, nil)
	if _, body := get(t, srv.URL+"/"+path, nil); !bytes.Equal(body, full) {
		t.Fatal("SetOverride(nil) did not undo Corrupt")
	}
	s.SetOverride(path, func(r io.Reader) io.Reader { return io.LimitReader(r, 10) })
	if resp, body := get(t, srv.URL+"/"+path, nil); len(body) != 10 || resp.ContentLength != 10 {
		t.Fatalf("truncating override: %d bytes", len(body))
	}
	s.SetHidden(path, true)
	if resp, _ := get(t, srv.URL+"/"+path, nil); resp.StatusCode != 404 {
		t.Fatalf("hidden: %s", resp.Status)
	}
	s.SetHidden(path, false)
	if resp, _ := get(t, srv.URL+"/"+path, nil); resp.StatusCode != 200 {
		t.Fatalf("unhidden: %s", resp.Status)
	}
	if err := s.Corrupt(IndexPath); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, srv.URL+"/"+IndexPath, nil); bytes.Equal(body, s.Files[IndexPath]) || len(body) != len(s.Files[IndexPath]) {
		t.Fatal("corrupted index served intact")
	}
	if err := s.Corrupt("no/such"); err == nil {
		t.Fatal("Corrupt of an unknown path")
	}
}

func TestWriteDir(t *testing.T) {
	signer, _ := testSigner(t)
	s, err := Generate(SmallConfig(), signer)
	if err != nil {
		t.Fatal(err)
	}
	hidden := "bootloaders/uefi/amd64/20250701/shim-signed.tar.xz"
	s.SetHidden(hidden, true)
	corrupt := "noble/arm64/20250701/squashfs"
	if err := s.Corrupt(corrupt); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := s.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for p, data := range s.Files {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %v", p, err)
		}
	}
	for p, size := range s.Content {
		f, err := os.Open(filepath.Join(dir, p))
		if p == hidden {
			if err == nil {
				t.Errorf("hidden %s written", p)
				f.Close()
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got, n := sum(f)
		f.Close()
		if n != size || (got == s.SHA256(p)) == (p == corrupt) {
			t.Errorf("%s: %d bytes, sha256 %s, catalogue %d %s", p, n, got, size, s.SHA256(p))
		}
	}
}

func TestNewTestSigner(t *testing.T) {
	if testing.Short() {
		t.Skip("generates an RSA key")
	}
	signer, kr, err := NewTestSigner()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Generate(Config{Releases: []string{"noble"}, Arches: []string{"amd64"}, Versions: []string{"1"}, Kernels: []string{"ga"}}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.VerifyClearsigned(SignedIndexPath, s.Files[SignedIndexPath], kr); err != nil {
		t.Fatal(err)
	}
	_, other := testSigner(t)
	if _, err := sign.VerifyClearsigned(SignedIndexPath, s.Files[SignedIndexPath], other); err == nil {
		t.Fatal("verified with an unrelated keyring")
	}
}

func TestScaledTo(t *testing.T) {
	cfg := BenchConfig().ScaledTo(300 << 20)
	if got := cfg.GeneratedSize(); got < 299<<20 || got > 301<<20 {
		t.Fatalf("GeneratedSize after ScaledTo(300 MiB) = %d", got)
	}
	s, err := Generate(SmallConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var manifests int64
	for p, size := range s.Content {
		if strings.HasSuffix(p, ".manifest") {
			manifests += size
		}
	}
	if got, want := SmallConfig().GeneratedSize(), s.TotalSize()-manifests; got != want {
		t.Fatalf("GeneratedSize = %d, generated %d", got, want)
	}
}

// The committed fixture is what the small preset generates (signatures aside, which carry a
// time) and its signatures verify with the test keyring.
func TestFixtureUpToDate(t *testing.T) {
	const root = "../../testdata/stream"
	s, err := Generate(SmallConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range s.Files {
		got, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s differs from the generator (%v): regenerate with go run ./scripts/genstream -preset small -out testdata/stream", p, err)
		}
	}
	for p, size := range s.Content {
		f, err := os.Open(filepath.Join(root, p))
		if err != nil {
			t.Error(err)
			continue
		}
		got, n := sum(f)
		f.Close()
		if n != size || got != s.SHA256(p) {
			t.Errorf("%s differs from the generator", p)
		}
	}
	_, kr := testSigner(t)
	for _, p := range []string{SignedIndexPath, "streams/v1/" + DownloadID + ".sjson", "streams/v1/" + BootloaderID + ".sjson"} {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sign.VerifyClearsigned(p, data, kr); err != nil {
			t.Error(err)
		}
	}
	for _, p := range []string{IndexPath, ProductsPath(DownloadID), ProductsPath(BootloaderID)} {
		data, err1 := os.ReadFile(filepath.Join(root, p))
		sig, err2 := os.ReadFile(filepath.Join(root, p+".gpg"))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if err := sign.VerifyDetached(p, data, sig, kr); err != nil {
			t.Error(err)
		}
	}
}
