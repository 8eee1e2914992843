package sign

import (
	"bytes"
	"crypto"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// bodies are signed and must come back byte for byte.
var bodies = []struct{ name, body string }{
	{"json with trailing newline", "{\n \"format\": \"index:1.0\",\n \"index\": {}\n}\n"},
	{"json without trailing newline", "{\"format\": \"index:1.0\"}"},
	{"empty", ""},
	{"only a newline", "\n"},
	{"several trailing newlines", "{}\n\n\n"},
	{"blank lines inside", "a\n\n\nb\n"},
	{"lines starting with dashes", "-\n--\n- x\n-----BEGIN PGP SIGNATURE-----\n-----END PGP SIGNATURE-----\nlast\n"},
	{"dash line last, no newline", "x\n- y"},
	{"a signed-message header inside", "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA1\n\nfake\n"},
	{"From line and unicode", "From here\n\"name\": \"Ubuntu 24.04 “Noble” ✓\"\n"},
	{"leading spaces kept", "  indented\n\tand tabbed\n"},
	{"longest line", strings.Repeat("x", MaxClearsignLine) + "\n-" + strings.Repeat("y", MaxClearsignLine-1)},
}

func TestClearSignRoundTrip(t *testing.T) {
	s, kr := testSigner(t), testKeyring(t)
	for _, tc := range bodies {
		t.Run(tc.name, func(t *testing.T) {
			msg := clearSign(t, s, []byte(tc.body))
			if !IsClearsigned(msg) {
				t.Fatalf("IsClearsigned(ClearSign output) = false:\n%s", msg)
			}
			if !bytes.Contains(msg, []byte("\nHash: SHA512\n")) {
				t.Errorf("no Hash: SHA512 header:\n%s", msg)
			}
			got, err := VerifyClearsigned("x.sjson", msg, kr)
			if err != nil {
				t.Fatalf("VerifyClearsigned: %v\n%s", err, msg)
			}
			if string(got) != tc.body {
				t.Errorf("VerifyClearsigned body\n%q\nwant\n%q", got, tc.body)
			}
			stripped, err := StripClearsigned("x.sjson", msg)
			if err != nil {
				t.Fatal(err)
			}
			if string(stripped) != tc.body {
				t.Errorf("StripClearsigned body\n%q\nwant\n%q", stripped, tc.body)
			}
		})
	}
}

// TestClearSignNormalises: the clearsigned form does not carry trailing white space or carriage
// returns (RFC 4880 §7.1), so they are gone from the verified body; the signature covers what is
// returned.
func TestClearSignNormalises(t *testing.T) {
	s, kr := testSigner(t), testKeyring(t)
	for in, want := range map[string]string{
		"a  \nb\t\n":  "a\nb\n",
		"a\r\nb\r\n":  "a\nb\n",
		"-x \r\n- \n": "-x\n-\n",
	} {
		got, err := VerifyClearsigned("x.sjson", clearSign(t, s, []byte(in)), kr)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("body of %q = %q, want %q", in, got, want)
		}
	}
}

func TestClearSignRefusesLongLines(t *testing.T) {
	s := testSigner(t)
	body := "{\n" + strings.Repeat("x", MaxClearsignLine+1) + "\n}\n"
	var out bytes.Buffer
	err := s.ClearSign(&out, strings.NewReader(body))
	if err == nil || !strings.Contains(err.Error(), "line 2 ") {
		t.Errorf("ClearSign of a %d-byte line: %v, want an error naming line 2", MaxClearsignLine+1, err)
	}
	// Detached signatures have no such limit.
	if err := VerifyDetached("x.json", []byte(body), detachSign(t, s, []byte(body)), testKeyring(t)); err != nil {
		t.Error(err)
	}
}

func TestIsClearsigned(t *testing.T) {
	for in, want := range map[string]bool{
		"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n": true,
		"-----BEGIN PGP SIGNED MESSAGE-----\r\n":             true,
		"-----BEGIN PGP SIGNED MESSAGE-----":                 true,
		"{\"format\": \"index:1.0\"}\n":                      false,
		"":                                                   false,
		"junk\n-----BEGIN PGP SIGNED MESSAGE-----\n":         false,
		"-----BEGIN PGP SIGNATURE-----\n":                    false,
		"-----BEGIN PGP SIGNED MESSAGE-----x\n":              false,
	} {
		if got := IsClearsigned([]byte(in)); got != want {
			t.Errorf("IsClearsigned(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestDetachedRoundTrip(t *testing.T) {
	s, kr := testSigner(t), testKeyring(t)
	for _, tc := range append(bodies, struct{ name, body string }{"crlf and trailing spaces kept", "a \r\nb\t\r\n"}) {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.body)
			sig := detachSign(t, s, data)
			if !bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNATURE-----\n")) {
				t.Fatalf("DetachSign did not armour:\n%s", sig)
			}
			if err := VerifyDetached("x.json", data, sig, kr); err != nil {
				t.Errorf("armoured: %v", err)
			}
			if err := VerifyDetached("x.json", data, dearmor(t, sig), kr); err != nil {
				t.Errorf("binary: %v", err)
			}
			p, err := packet.Read(bytes.NewReader(dearmor(t, sig)))
			if err != nil {
				t.Fatal(err)
			}
			if sp := p.(*packet.Signature); sp.Hash != crypto.SHA512 || sp.SigType != packet.SigTypeBinary {
				t.Errorf("signature hash %v type %#x, want SHA512 binary", sp.Hash, sp.SigType)
			}
			if err := VerifyDetached("x.json", append(data, ' '), sig, kr); err == nil {
				t.Errorf("a signature over %q verified data with a space appended", tc.body)
			}
		})
	}
}

// rearmor wraps binary packets in a PGP SIGNATURE armour block.
func rearmor(t *testing.T, bin []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, "PGP SIGNATURE", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bin)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// replaceSignatureBlock swaps the armoured signature block of a clearsigned message.
func replaceSignatureBlock(t *testing.T, msg, block []byte) []byte {
	t.Helper()
	i := bytes.Index(msg, beginSignature)
	if i < 0 {
		t.Fatal("no signature block")
	}
	return append(append([]byte{}, msg[:i]...), block...)
}

func TestVerifyClearsignedErrors(t *testing.T) {
	const name = "streams/v1/index.sjson"
	s, kr := testSigner(t), testKeyring(t)
	body := []byte("{\n \"format\": \"index:1.0\"\n}\n")
	good := clearSign(t, s, body)
	sigStart := bytes.Index(good, beginSignature)

	// An expired key: made two days ago with a one-hour lifetime, signed while it was valid.
	made := time.Now().Add(-48 * time.Hour)
	expired := quickSigner(t, func() time.Time { return made }, 3600)
	expired.now = func() time.Time { return made.Add(10 * time.Minute) }
	expiredMsg := clearSign(t, expired, body)

	// A revoked key: signs, then is revoked; the keyring holds the revocation.
	revoked := quickSigner(t, nil, 0)
	revokedMsg := clearSign(t, revoked, body)
	if err := revoked.entity.RevokeKey(packet.KeySuperseded, "test", nil); err != nil {
		t.Fatal(err)
	}

	// A good message whose signature block has had its base64 damaged.
	damaged := bytes.Clone(good)
	line := sigStart + len(beginSignature) + 2
	copy(damaged[line:], "!!!!")

	hashLie := bytes.Replace(good, []byte("Hash: SHA512"), []byte("Hash: SHA256"), 1)

	emptyBlock := replaceSignatureBlock(t, good, rearmor(t, nil))
	keyBlock := replaceSignatureBlock(t, good, rearmor(t, readKeyFile(t, "test-keyring.gpg")))

	for _, tc := range []struct {
		name string
		data []byte
		kr   *Keyring
		want error
		says string
	}{
		{"plain json", body, kr, ErrNoSignature, "not a clearsigned message"},
		{"empty file", nil, kr, ErrNoSignature, ""},
		{"detached signature given as sjson", detachSign(t, s, body), kr, ErrNoSignature, ""},
		{"signature block without signatures", emptyBlock, kr, ErrNoSignature, "no signature"},
		{"signed by another key", clearSign(t, otherSigner(t), body), kr, ErrUnknownKey, ""},
		{"no keyring", good, nil, ErrUnknownKey, "keyring is empty"},
		{"tampered body", bytes.Replace(good, []byte("index:1.0"), []byte("index:1.1"), 1), kr, ErrBadSignature, ""},
		{"line added to body", bytes.Replace(good, []byte("}\n"), []byte("}\n{}\n"), 1), kr, ErrBadSignature, ""},
		{"hash header lies", hashLie, kr, ErrBadSignature, "Hash header"},
		{"expired key", expiredMsg, publicKeyring(t, expired), ErrKeyExpired, expired.Fingerprint()},
		{"revoked key", revokedMsg, publicKeyring(t, revoked), ErrKeyRevoked, revoked.Fingerprint()},
		{"truncated in the armour", good[:sigStart+len(beginSignature)+40], kr, ErrMalformed, "truncated"},
		{"truncated before the signature", good[:sigStart], kr, ErrMalformed, "no signature block"},
		{"truncated in the headers", good[:40], kr, ErrMalformed, ""},
		{"damaged armour", damaged, kr, ErrMalformed, ""},
		{"key block as signature", keyBlock, kr, ErrMalformed, "packet"},
		{"text before", append([]byte("hello\n"), good...), kr, ErrMalformed, "before"},
		{"junk after", append(bytes.Clone(good), "junk\n"...), kr, ErrMalformed, "after the signature"},
		{"second message after", append(bytes.Clone(good), clearSign(t, s, []byte("{\"evil\": 1}\n"))...), kr, ErrMalformed, "second signed message"},
		{"second message by another key after", append(bytes.Clone(good), clearSign(t, otherSigner(t), []byte("{}"))...), kr, ErrMalformed, "second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyClearsigned(name, tc.data, tc.kr)
			if got != nil {
				t.Errorf("got a body %q with error %v", got, err)
			}
			t.Log(err)
			checkClass(t, err, name, tc.want)
			if err != nil && !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}

	// The unmodified message and its body verify: the cases above fail for their reason.
	if got, err := VerifyClearsigned(name, good, kr); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("good message: %q, %v", got, err)
	}
	// Trailing white space after the signature block is allowed.
	if _, err := VerifyClearsigned(name, append(bytes.Clone(good), "\n\n  \n"...), kr); err != nil {
		t.Errorf("trailing blank lines: %v", err)
	}
}

func TestStripClearsigned(t *testing.T) {
	const name = "streams/v1/com.ubuntu.maas:stable:v3:download.sjson"
	body := []byte("{\"products\": {}}\n")
	// Signed by a key nobody has: --no-verify still gets the body.
	msg := clearSign(t, otherSigner(t), body)
	got, err := StripClearsigned(name, msg)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("StripClearsigned = %q, %v; want %q", got, err, body)
	}
	_, err = StripClearsigned(name, body)
	checkClass(t, err, name, ErrNoSignature)
	_, err = StripClearsigned(name, msg[:len(msg)/2])
	checkClass(t, err, name, ErrMalformed)
	_, err = StripClearsigned(name, append(bytes.Clone(msg), msg...))
	checkClass(t, err, name, ErrMalformed)
}

func TestVerifyDetachedErrors(t *testing.T) {
	const name = "streams/v1/index.json"
	s, kr := testSigner(t), testKeyring(t)
	data := []byte("{\"format\": \"index:1.0\"}\n")
	good := detachSign(t, s, data)

	made := time.Now().Add(-48 * time.Hour)
	expired := quickSigner(t, func() time.Time { return made }, 3600)
	expired.now = func() time.Time { return made.Add(10 * time.Minute) }
	expiredSig := detachSign(t, expired, data)

	revoked := quickSigner(t, nil, 0)
	revokedSig := detachSign(t, revoked, data)
	if err := revoked.entity.RevokeKey(packet.KeyCompromised, "test", nil); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		data, sig []byte
		kr        *Keyring
		want      error
	}{
		{"empty signature", data, nil, kr, ErrNoSignature},
		{"empty armour", data, rearmor(t, nil), kr, ErrNoSignature},
		{"signed by another key", data, detachSign(t, otherSigner(t), data), kr, ErrUnknownKey},
		{"tampered data", []byte("{\"format\": \"index:1.1\"}\n"), good, kr, ErrBadSignature},
		{"signature of other data", data, detachSign(t, s, []byte("other")), kr, ErrBadSignature},
		{"expired key", data, expiredSig, publicKeyring(t, expired), ErrKeyExpired},
		{"revoked key", data, revokedSig, publicKeyring(t, revoked), ErrKeyRevoked},
		{"truncated armour", data, good[:len(good)/2], kr, ErrMalformed},
		{"truncated binary", data, dearmor(t, good)[:40], kr, ErrMalformed},
		{"public key as signature", data, readKeyFile(t, "test-keyring.asc"), kr, ErrMalformed},
		{"binary key as signature", data, readKeyFile(t, "test-keyring.gpg"), kr, ErrMalformed},
		{"clearsigned message as signature", data, clearSign(t, s, data), kr, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyDetached(name, tc.data, tc.sig, tc.kr)
			t.Log(err)
			checkClass(t, err, name, tc.want)
		})
	}
	if err := VerifyDetached(name, data, good, kr); err != nil {
		t.Fatalf("good signature: %v", err)
	}
}

// TestConcurrentUse: a Keyring and a Signer may be shared by goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	s, kr := testSigner(t), testKeyring(t)
	done := make(chan error)
	for i := range 8 {
		go func() {
			body := []byte(strings.Repeat("{}\n", i+1))
			var msg, sig bytes.Buffer
			if err := s.ClearSign(&msg, bytes.NewReader(body)); err != nil {
				done <- err
				return
			}
			if err := s.DetachSign(&sig, bytes.NewReader(body)); err != nil {
				done <- err
				return
			}
			got, err := VerifyClearsigned("c.sjson", msg.Bytes(), kr)
			if err == nil && !bytes.Equal(got, body) {
				err = fmt.Errorf("body %q, want %q", got, body)
			}
			if err == nil {
				err = VerifyDetached("c.json", body, sig.Bytes(), kr)
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
