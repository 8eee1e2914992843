package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ssmirror/ssmirror/internal/maasmodel"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/sign"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "64K": 64 << 10, "300M": 300 << 20, "1.5G": 3 << 29, "1.5GB": 3 << 29, "2t": 2 << 40} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1M", "abc", "0"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestRunSmall(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := run([]string{"-out", dir, "-key", "../../testdata/keys/test-signing-key.asc", "-releases", "noble", "-total-size", "200K"}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	kr, err := sign.LoadKeyring("../../testdata/keys/test-keyring.gpg")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, streamtest.SignedIndexPath))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.VerifyClearsigned(streamtest.SignedIndexPath, data, kr); err != nil {
		t.Fatal(err)
	}
	// What genstream writes is what MAAS 4 accepts.
	models, err := maasmodel.CheckMirror(func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, p)) }, streamtest.IndexPath)
	if err != nil || models[streamtest.DownloadID] != maasmodel.MultiFile || models[streamtest.BootloaderID] != maasmodel.Bootloader {
		t.Fatalf("MAAS would refuse the written stream: %v %v", models, err)
	}
	var total int64
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && filepath.Dir(p) != filepath.Join(dir, "streams", "v1") {
			total += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if total < 190<<10 || total > 215<<10 {
		t.Fatalf("content totals %d bytes, want about 200K", total)
	}
	if _, err := os.Stat(filepath.Join(dir, "noble/amd64/20250718/squashfs")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jammy")); !os.IsNotExist(err) {
		t.Fatalf("-releases noble still wrote jammy: %v", err)
	}
	if err := run([]string{"-out", dir, "-preset", "huge"}, &out, &errOut); err == nil {
		t.Fatal("unknown preset accepted")
	}
}
