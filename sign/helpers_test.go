package sign

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

const keysDir = "../testdata/keys"

// sentinels are the error classes a verification error must wrap exactly one of.
var sentinels = []error{ErrNoSignature, ErrUnknownKey, ErrBadSignature, ErrKeyExpired, ErrKeyRevoked, ErrMalformed}

func keyFile(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(keysDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readKeyFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(keyFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testSigner(t testing.TB) *Signer {
	t.Helper()
	return loadSignerFile(t, "test-signing-key.asc")
}

func otherSigner(t testing.TB) *Signer {
	t.Helper()
	return loadSignerFile(t, "other-signing-key.asc")
}

func loadSignerFile(t testing.TB, name string) *Signer {
	t.Helper()
	s, err := LoadSigner(bytes.NewReader(readKeyFile(t, name)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	kr, err := LoadKeyring(keyFile(t, "test-keyring.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func clearSign(t testing.TB, s *Signer, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.ClearSign(&buf, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func detachSign(t testing.TB, s *Signer, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.DetachSign(&buf, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func publicKeyring(t testing.TB, s *Signer) *Keyring {
	t.Helper()
	var buf bytes.Buffer
	if err := s.WritePublicKeyring(&buf); err != nil {
		t.Fatal(err)
	}
	kr, err := ReadKeyring(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// dearmor returns the binary contents of an armoured block.
func dearmor(t testing.TB, data []byte) []byte {
	t.Helper()
	b, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(b.Body); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// checkClass fails unless err names the file and wraps want and no other class.
func checkClass(t *testing.T, err error, name string, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if !strings.HasPrefix(err.Error(), name+": ") {
		t.Errorf("error %q does not start with the file name %q", err, name)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(%q, %q) = %v, want %v", err, s, got, s == want)
		}
	}
}

// quickSigner makes a fresh ed25519 key whose clock (creation and signature times) is now().
func quickSigner(t testing.TB, now func() time.Time, lifetime uint32) *Signer {
	t.Helper()
	e, err := openpgp.NewEntity("quick test key", "", "quick@ssmirror.invalid", &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		DefaultHash:     crypto.SHA512,
		Time:            now,
		KeyLifetimeSecs: lifetime,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{entity: e, now: now}
}

// needBinary returns the path of an external program, skipping the test when it is missing,
// unless CI=true, where a missing program is a failure.
func needBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// gpgHome makes a throwaway GnuPG home directory (short path, for gpg-agent's socket) and
// stops its agent at the end of the test.
func gpgHome(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p, err := exec.LookPath("gpgconf"); err == nil {
			_ = exec.Command(p, "--homedir", dir, "--kill", "all").Run()
		}
		os.RemoveAll(dir)
	})
	return dir
}

// run runs a command, failing the test with its output on error.
func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd.CombinedOutput()
}
