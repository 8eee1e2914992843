package sign

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadKeyringFormats(t *testing.T) {
	test, other := testSigner(t).Fingerprint(), otherSigner(t).Fingerprint()
	bin := readKeyFile(t, "test-keyring.gpg")
	asc := readKeyFile(t, "test-keyring.asc")
	otherBin := readKeyFile(t, "other-keyring.gpg")
	var otherAsc bytes.Buffer
	if err := otherSigner(t).WriteArmoredPublicKeyring(&otherAsc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want []string
	}{
		{"binary", bin, []string{test}},
		{"armoured", asc, []string{test}},
		{"armoured with leading blank lines", append([]byte("\n\r\n"), asc...), []string{test}},
		{"two binary keys", slices.Concat(bin, otherBin), []string{test, other}},
		{"two armoured blocks", slices.Concat(asc, otherAsc.Bytes()), []string{test, other}},
		{"armoured secret key (public part used)", readKeyFile(t, "other-signing-key.asc"), []string{other}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := ReadKeyring(bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if got := kr.Fingerprints(); !slices.Equal(got, tc.want) {
				t.Errorf("fingerprints %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReadKeyringRejects(t *testing.T) {
	sig := detachSign(t, testSigner(t), []byte("x"))
	keybox := append(make([]byte, 8), []byte("KBXf")...)
	keybox = append(keybox, make([]byte, 20)...)
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "empty"},
		{"white space", " \n\t\n", "empty"},
		{"garbage", "\x99\x01\x02not a key at all", ""},
		{"a signature, not a key", string(sig), `"PGP SIGNATURE", not a key`},
		{"truncated armour", string(readKeyFile(t, "test-keyring.asc")[:300]), "armoured block 1"},
		{"keybox", string(keybox), "keybox"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := ReadKeyring(strings.NewReader(tc.data))
			if err == nil {
				t.Fatalf("got a keyring with %v, want an error", kr.Fingerprints())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadKeyringNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.gpg")
	if _, err := LoadKeyring(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKeyring(missing) = %v, want a not-exist error naming %s", err, missing)
	}
	bad := filepath.Join(dir, "bad.gpg")
	if err := os.WriteFile(bad, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("LoadKeyring(bad) = %v, want an error naming %s", err, bad)
	}
	kr, err := LoadKeyring(keyFile(t, "test-keyring.asc"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kr.Fingerprints(), []string{testSigner(t).Fingerprint()}; !slices.Equal(got, want) {
		t.Errorf("fingerprints %v, want %v", got, want)
	}
}
