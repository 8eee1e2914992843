package sign

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func TestLoadSignerFormats(t *testing.T) {
	asc := readKeyFile(t, "test-signing-key.asc")
	want := testKeyring(t).Fingerprints()[0]
	for name, data := range map[string][]byte{
		"armoured":                asc,
		"armoured after blank":    append([]byte("\n\n"), asc...),
		"binary":                  dearmor(t, asc),
		"secret and public mixed": slices.Concat(readKeyFile(t, "other-keyring.gpg"), dearmor(t, asc)),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := LoadSigner(bytes.NewReader(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Fingerprint(); got != want || strings.ToUpper(got) != got || len(got) != 40 {
				t.Errorf("fingerprint %q, want %q", got, want)
			}
		})
	}
}

func TestLoadSignerRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		says string
	}{
		{"empty", nil, "empty"},
		{"public key only", readKeyFile(t, "test-keyring.asc"), "only public keys"},
		{"two secret keys", slices.Concat(dearmor(t, readKeyFile(t, "test-signing-key.asc")), dearmor(t, readKeyFile(t, "other-signing-key.asc"))), "2 secret keys"},
		{"garbage", []byte("not a key"), "secret key"},
		{"signature", detachSign(t, testSigner(t), []byte("x")), "PGP SIGNATURE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadSigner(bytes.NewReader(tc.data), nil)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("LoadSigner = %v, want an error saying %q", err, tc.says)
			}
		})
	}
}

func TestLoadSignerRefusesUnusableKeys(t *testing.T) {
	serialize := func(e *openpgp.Entity) []byte {
		var buf bytes.Buffer
		if err := e.SerializePrivateWithoutSigning(&buf, nil); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	revoked := quickSigner(t, nil, 0)
	if err := revoked.entity.RevokeKey(packet.KeyRetired, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(bytes.NewReader(serialize(revoked.entity)), nil); err == nil || !strings.Contains(err.Error(), "no usable signing key") {
		t.Errorf("revoked key: %v", err)
	}
}

// TestGenerateKey: GenerateKey's key is RSA 3072, v4, without expiry, encrypted with the
// passphrase; LoadSigner needs the right passphrase; the key signs what the public keyring
// verifies; and GnuPG imports the encrypted key and gpgv verifies its signatures.
func TestGenerateKey(t *testing.T) {
	pass := []byte("correct horse battery staple")
	secret, public, err := GenerateKey("Mirror Operator", "ops@example.invalid", pass)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(secret, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
		t.Fatalf("secret key is not armoured:\n%.200s", secret)
	}
	_, err = LoadSigner(bytes.NewReader(secret), nil)
	if !errors.Is(err, ErrPassphraseRequired) {
		t.Errorf("LoadSigner without passphrase: %v, want ErrPassphraseRequired", err)
	}
	_, err = LoadSigner(bytes.NewReader(secret), []byte("wrong"))
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("LoadSigner with a wrong passphrase: %v, want ErrWrongPassphrase", err)
	}
	s, err := LoadSigner(bytes.NewReader(secret), pass)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := ReadKeyring(bytes.NewReader(public))
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.Fingerprints(); !slices.Equal(got, []string{s.Fingerprint()}) {
		t.Errorf("public keyring holds %v, signer is %s", got, s.Fingerprint())
	}
	var written bytes.Buffer
	if err := s.WritePublicKeyring(&written); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(written.Bytes(), public) {
		t.Errorf("WritePublicKeyring differs from GenerateKey's public keyring")
	}

	e := kr.entities[0]
	if pk := e.PrimaryKey; pk.Version != 4 || pk.PubKeyAlgo != packet.PubKeyAlgoRSA {
		t.Errorf("primary key v%d algo %v, want v4 RSA", pk.Version, pk.PubKeyAlgo)
	} else if bits, _ := pk.BitLength(); bits != 3072 {
		t.Errorf("RSA %d bits, want 3072", bits)
	}
	if self, id := e.PrimarySelfSignature(); self.KeyLifetimeSecs != nil && *self.KeyLifetimeSecs != 0 {
		t.Errorf("key expires after %ds", *self.KeyLifetimeSecs)
	} else if id == nil || id.Name != "Mirror Operator <ops@example.invalid>" {
		t.Errorf("user id %+v", id)
	}

	body := []byte("{\"format\": \"products:1.0\"}\n")
	msg := clearSign(t, s, body)
	if got, err := VerifyClearsigned("p.sjson", msg, kr); err != nil || !bytes.Equal(got, body) {
		t.Errorf("VerifyClearsigned = %q, %v", got, err)
	}
	sig := detachSign(t, s, body)
	if err := VerifyDetached("p.json", body, sig, kr); err != nil {
		t.Error(err)
	}
	p, err := packet.Read(bytes.NewReader(dearmor(t, sig)))
	if err != nil {
		t.Fatal(err)
	}
	if h := p.(*packet.Signature).Hash; h != crypto.SHA512 {
		t.Errorf("detached signature hash %v, want SHA512", h)
	}

	// Without a passphrase the secret key is not encrypted.
	plain, _, err := generateKey("Quick", "", nil, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(bytes.NewReader(plain), nil); err != nil {
		t.Errorf("passphrase-less key: %v", err)
	}
	if _, _, err := GenerateKey("", "x@example.invalid", nil); err == nil {
		t.Error("GenerateKey with an empty name succeeded")
	}

	t.Run("gnupg", func(t *testing.T) {
		gpg, gpgv := needBinary(t, "gpg"), needBinary(t, "gpgv")
		home := gpgHome(t)
		dir := t.TempDir()
		files := map[string][]byte{"secret.asc": secret, "keyring.gpg": public, "m.sjson": msg, "p.json": body, "p.json.gpg": sig}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		keyring := filepath.Join(dir, "keyring.gpg")
		run(t, nil, gpgv, "--keyring", keyring, filepath.Join(dir, "m.sjson"))
		run(t, nil, gpgv, "--keyring", keyring, filepath.Join(dir, "p.json.gpg"), filepath.Join(dir, "p.json"))
		// GnuPG imports the passphrase-protected key and signs with it.
		gargs := []string{"--batch", "--homedir", home, "--pinentry-mode", "loopback"}
		run(t, nil, gpg, append(gargs, "--passphrase", string(pass), "--import", filepath.Join(dir, "secret.asc"))...)
		// Restart the agent so it has not cached the passphrase from the import.
		run(t, nil, "gpgconf", "--homedir", home, "--kill", "gpg-agent")
		if out, err := runErr(body, gpg, append(gargs, "--passphrase", "wrong", "--clearsign")...); err == nil {
			t.Errorf("gpg signed with a wrong passphrase: the key is not protected\n%s", out)
		}
		gmsg := run(t, body, gpg, append(gargs, "--passphrase", string(pass), "--clearsign")...)
		if got, err := VerifyClearsigned("g.sjson", gmsg, kr); err != nil || string(got) != strings.TrimSuffix(string(body), "\n") {
			t.Errorf("GnuPG-signed with the imported key: %q, %v", got, err)
		}
	})
}
