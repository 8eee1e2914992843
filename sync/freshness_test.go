package sync_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/sync"
)

// readRecord reads the freshness record of a directory mirror.
func readRecord(t *testing.T, dir string) *sync.Freshness {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, sync.FreshnessKey))
	if err != nil {
		t.Fatalf("freshness record: %v", err)
	}
	f, err := sync.ParseFreshness(data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFreshnessRecord: each publish writes .ssmirror/freshness.json after the index, naming
// upstream, the index's updated, each products file's newest version held, every metadata
// object with its sha256 as published, this publish's time and the previous one's; an
// up-to-date run writes nothing; a record deleted behind the mirror's back is written again as
// it was.
func TestFreshnessRecord(t *testing.T) {
	up := newUpstream(t, smallConfig("20250701", "20250718"), nil)
	dir, dst := newTarget(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}, Hooks: sync.Hooks{Now: clock},
		Publishing: sync.Publishing{Freshness: sync.FreshnessInfo{Upstream: "https://upstream.example/stable/", Generator: "ssmirror test"}}}
	rep := run(t, up, dst, opts)
	f := readRecord(t, dir)
	if rep.Freshness == nil || !rep.Freshness.Published.Equal(f.Published) {
		t.Errorf("report's record %+v, written %+v", rep.Freshness, f)
	}
	if f.Upstream != "https://upstream.example/stable/" || f.Generator != "ssmirror test" || f.Mode != "verbatim" ||
		!f.Published.Equal(t0) || f.PreviousPublished != nil || f.IndexUpdated == "" || len(f.UpstreamKeys) == 0 {
		t.Errorf("first record: %+v", f)
	}
	if len(f.Products) == 0 {
		t.Fatal("no products in the record")
	}
	for _, p := range f.Products {
		if p.ContentID == "com.ubuntu.maas:stable:v3:download" && p.NewestVersion != "20250718" {
			t.Errorf("%s: newest version %q, want 20250718", p.ContentID, p.NewestVersion)
		}
	}
	for _, m := range f.Metadata {
		data, err := os.ReadFile(filepath.Join(dir, m.Path))
		if err != nil {
			t.Errorf("record names %s: %v", m.Path, err)
			continue
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != m.SHA256 || int64(len(data)) != m.Size {
			t.Errorf("record's %s is not the published one", m.Path)
		}
	}
	if len(f.Metadata) < 3 {
		t.Errorf("record lists %d metadata files", len(f.Metadata))
	}

	// Up to date: nothing written, the record included.
	now = t0.Add(time.Hour)
	before, _ := os.Stat(filepath.Join(dir, sync.FreshnessKey))
	rep = run(t, up, dst, opts)
	after, _ := os.Stat(filepath.Join(dir, sync.FreshnessKey))
	if rep.Freshness != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("up-to-date run rewrote the freshness record")
	}

	// A new version upstream: a new publish, a new record naming the one before.
	up2 := newUpstream(t, smallConfig("20250701", "20250718", "20250801"), nil)
	now = t0.Add(2 * time.Hour)
	run(t, up2, dst, opts)
	f = readRecord(t, dir)
	if !f.Published.Equal(now) || f.PreviousPublished == nil || !f.PreviousPublished.Equal(t0) {
		t.Errorf("second publish: published %v previous %v, want %v and %v", f.Published, f.PreviousPublished, now, t0)
	}
	for _, p := range f.Products {
		if p.ContentID == "com.ubuntu.maas:stable:v3:download" && p.NewestVersion != "20250801" {
			t.Errorf("%s: newest version %q, want 20250801", p.ContentID, p.NewestVersion)
		}
	}

	// Deleted behind the mirror's back: written again, the same publish.
	if err := os.Remove(filepath.Join(dir, sync.FreshnessKey)); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(3 * time.Hour)
	run(t, up2, dst, opts)
	g := readRecord(t, dir)
	if !g.Published.Equal(f.Published) || g.PreviousPublished == nil || !g.PreviousPublished.Equal(t0) {
		t.Errorf("rewritten record: published %v previous %v, want %v and %v", g.Published, g.PreviousPublished, f.Published, t0)
	}
}

// TestFreshnessRecordCurated: a curated mirror's record also comes clearsigned with the
// operator's key (one object, .ssmirror/freshness.sjson), names the key, and a mirror that goes
// back to verbatim loses the signed form.
func TestFreshnessRecordCurated(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	operator := loadSigner(t, "other-signing-key.asc")
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}, Publishing: sync.Publishing{Signer: operator}}
	run(t, up, dst, opts)
	f := readRecord(t, dir)
	if f.Mode != "curated" || f.SigningKey != operator.Fingerprint() || f.Index != "streams/v1/index.json" {
		t.Errorf("curated record: mode %q key %q index %q", f.Mode, f.SigningKey, f.Index)
	}
	signed, err := os.ReadFile(filepath.Join(dir, sync.FreshnessSignedKey))
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := operator.WritePublicKeyring(&pub); err != nil {
		t.Fatal(err)
	}
	kr, err := sign.ReadKeyring(&pub)
	if err != nil {
		t.Fatal(err)
	}
	body, err := sign.VerifyClearsigned(sync.FreshnessSignedKey, signed, kr)
	if err != nil {
		t.Fatalf("signed record does not verify with the operator's key: %v", err)
	}
	plain, _ := os.ReadFile(filepath.Join(dir, sync.FreshnessKey))
	if !bytes.Equal(bytes.TrimSpace(body), bytes.TrimSpace(plain)) {
		t.Errorf("signed record says\n%s\nplain one\n%s", body, plain)
	}

	// Back to verbatim (meant: a target keeps its mode otherwise): the signed form goes, the
	// plain one says verbatim.
	opts.Signer = nil
	opts.AllowModeChange = true
	opts.StartPath = "streams/v1/index.json"
	run(t, up, dst, opts)
	if _, err := os.Stat(filepath.Join(dir, sync.FreshnessSignedKey)); !os.IsNotExist(err) {
		t.Errorf("signed record still there after going verbatim: %v", err)
	}
	if f := readRecord(t, dir); f.Mode != "verbatim" {
		t.Errorf("mode %q after going verbatim", f.Mode)
	}
}

func TestCacheLifetime(t *testing.T) {
	for _, c := range []struct {
		cc   string
		want time.Duration
		bad  bool
	}{
		{sync.DefaultMetadataCacheControl, 300 * time.Second, false},
		{"public, max-age=60, s-maxage=600", 600 * time.Second, false},
		{"max-age=5, stale-while-revalidate=30", 35 * time.Second, false},
		{"no-store", 0, false},
		{"public, no-cache", 0, false},
		{"public", 0, true},
		{"max-age=soon", 0, true},
	} {
		got, err := sync.CacheLifetime(c.cc)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("CacheLifetime(%q) = %v, %v; want %v (error %v)", c.cc, got, err, c.want, c.bad)
		}
	}
	if got := sync.FreshnessCacheControl("public, max-age=3"); got != "public, max-age=3" {
		t.Errorf("record Cache-Control for max-age=3: %q", got)
	}
	if got := sync.FreshnessCacheControl(sync.DefaultMetadataCacheControl); got != "public, max-age=60" {
		t.Errorf("record Cache-Control by default: %q", got)
	}
}
