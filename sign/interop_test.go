package sign

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGPGVAcceptsOurSignatures: Debian's gpgv, which is what MAAS and simplestreams call,
// accepts what ClearSign and DetachSign make, against the binary keyring WritePublicKeyring
// makes, and rejects a tampered copy (so the test can fail).
func TestGPGVAcceptsOurSignatures(t *testing.T) {
	gpgv := needBinary(t, "gpgv")
	s := testSigner(t)
	dir := t.TempDir()
	keyring := filepath.Join(dir, "keyring.gpg") // gpgv wants an absolute path
	var kb bytes.Buffer
	if err := s.WritePublicKeyring(&kb); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyring, kb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i, tc := range bodies {
		t.Run(tc.name, func(t *testing.T) {
			msg := clearSign(t, s, []byte(tc.body))
			sjson := write("index.sjson", msg)
			out := run(t, nil, gpgv, "--keyring", keyring, sjson)
			if !strings.Contains(string(out), "Good signature") || !strings.Contains(string(out), s.Fingerprint()) {
				t.Errorf("gpgv output lacks a good signature by %s:\n%s", s.Fingerprint(), out)
			}
			// gpgv --output writes the body it verified: the same bytes we return, except
			// that GnuPG takes the line break before the signature block as the separator.
			plain := filepath.Join(dir, "out.json")
			os.Remove(plain)
			run(t, nil, gpgv, "--keyring", keyring, "--output", plain, sjson)
			got, err := os.ReadFile(plain)
			if err != nil {
				t.Fatal(err)
			}
			ours, _ := VerifyClearsigned("index.sjson", msg, testKeyring(t))
			if want := string(ours) + "\n"; string(got) != want && string(got) != string(ours) {
				t.Errorf("gpgv body %q, ours %q", got, ours)
			}

			data := write("index.json", []byte(tc.body))
			sig := write("index.json.gpg", detachSign(t, s, []byte(tc.body)))
			run(t, nil, gpgv, "--keyring", keyring, sig, data)
			// The committed keyring (an absolute path) works as well.
			run(t, nil, gpgv, "--keyring", keyFile(t, "test-keyring.gpg"), sig, data)

			if i == 0 {
				write("index.sjson", bytes.Replace(msg, []byte("index:1.0"), []byte("index:1.1"), 1))
				if out, err := runErr(nil, gpgv, "--keyring", keyring, sjson); err == nil {
					t.Errorf("gpgv accepted a tampered clearsigned message:\n%s", out)
				}
				write("index.json", []byte(tc.body+" "))
				if out, err := runErr(nil, gpgv, "--keyring", keyring, sig, data); err == nil {
					t.Errorf("gpgv accepted a tampered detached-signed file:\n%s", out)
				}
			}
		})
	}
}

// TestWeVerifyGnuPG: what GnuPG signs (clearsigned with SHA512, armoured and binary detached),
// with our test key and with a key GnuPG made itself, verifies here; the keyring GnuPG exports
// (binary and armoured) loads.
func TestWeVerifyGnuPG(t *testing.T) {
	gpg := needBinary(t, "gpg")
	home := gpgHome(t)
	g := func(stdin []byte, args ...string) []byte {
		return run(t, stdin, gpg, append([]string{"--batch", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	}
	g(nil, "--import", keyFile(t, "test-signing-key.asc"))
	g(nil, "--quick-generate-key", "gnupg-made key <gnupg@ssmirror.invalid>", "ed25519", "sign", "never")

	kr := testKeyring(t)
	gnupgKeyring, err := ReadKeyring(bytes.NewReader(g(nil, "--export", "gnupg@ssmirror.invalid")))
	if err != nil {
		t.Fatal(err)
	}
	if armoured, err := ReadKeyring(bytes.NewReader(g(nil, "--export", "--armor"))); err != nil || len(armoured.Fingerprints()) != 2 {
		t.Fatalf("gpg --export --armor of two keys: %v, %v", armoured.Fingerprints(), err)
	}

	for _, signer := range []struct {
		user string
		kr   *Keyring
	}{{"test@ssmirror.invalid", kr}, {"gnupg@ssmirror.invalid", gnupgKeyring}} {
		for _, tc := range bodies {
			t.Run(signer.user+"/"+tc.name, func(t *testing.T) {
				body := []byte(tc.body)
				msg := g(body, "--local-user", signer.user, "--digest-algo", "SHA512", "--clearsign")
				got, err := VerifyClearsigned("gnupg.sjson", msg, signer.kr)
				if err != nil {
					t.Fatalf("%v\n%.2000s", err, msg)
				}
				// GnuPG folds the final line break of the body into the separator.
				if want := strings.TrimSuffix(tc.body, "\n"); string(got) != want {
					t.Errorf("body %q, want %q", got, want)
				}
				if strings.HasSuffix(tc.body, "\n") && len(tc.body) > 0 {
					tampered := bytes.Replace(msg, []byte("\n-----BEGIN PGP SIGNATURE"), []byte("x\n-----BEGIN PGP SIGNATURE"), 1)
					_, err := VerifyClearsigned("gnupg.sjson", tampered, signer.kr)
					checkClass(t, err, "gnupg.sjson", ErrBadSignature)
				}

				armoured := g(body, "--local-user", signer.user, "--digest-algo", "SHA512", "--armor", "--detach-sign")
				if err := VerifyDetached("gnupg.json", body, armoured, signer.kr); err != nil {
					t.Errorf("armoured detached: %v", err)
				}
				binary := g(body, "--local-user", signer.user, "--detach-sign")
				if err := VerifyDetached("gnupg.json", body, binary, signer.kr); err != nil {
					t.Errorf("binary detached: %v", err)
				}
				other := testKeyring(t)
				if signer.kr == kr {
					other = gnupgKeyring
				}
				checkClass(t, VerifyDetached("gnupg.json", body, binary, other), "gnupg.json", ErrUnknownKey)
			})
		}
	}
}

// TestGPGVAcceptsManySignatures: every one of many clearsigned messages verifies with gpgv.
// Signatures differ in length (a random salt notation, the RSA value's leading zeros), and
// GnuPG 2.2 misread the armour of those whose base64 ends unpadded when it had no CRC24 line:
// about one in ten failed before ClearSign added it. Each message must also carry that line.
func TestGPGVAcceptsManySignatures(t *testing.T) {
	gpgv := needBinary(t, "gpgv")
	s := testSigner(t)
	dir := t.TempDir()
	keyring := filepath.Join(dir, "keyring.gpg")
	var kb bytes.Buffer
	if err := s.WritePublicKeyring(&kb); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyring, kb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	crc := regexp.MustCompile(`\n=[A-Za-z0-9+/]{4}\n-----END PGP SIGNATURE-----\n$`)
	for i := range 40 {
		msg := clearSign(t, s, []byte(fmt.Sprintf("{\n  \"n\": %d\n}\n", i)))
		if !crc.Match(msg) {
			t.Fatalf("message %d has no CRC24 line before the END line:\n%s", i, msg)
		}
		p := filepath.Join(dir, "index.sjson")
		if err := os.WriteFile(p, msg, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runErr(nil, gpgv, "--keyring", keyring, p); err != nil {
			t.Fatalf("gpgv refused message %d: %v\n%s\n%s", i, err, out, msg)
		}
	}
}
