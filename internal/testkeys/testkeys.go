// Package testkeys loads the throwaway OpenPGP keys committed under testdata/keys for tests,
// from any package's directory.
package testkeys

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ssmirror/ssmirror/sign"
)

// Names of the committed keys (see testdata/keys/README).
const (
	SigningKey      = "test-signing-key.asc"  // signs the committed fixture stream
	Keyring         = "test-keyring.gpg"      // its public keyring
	OtherSigningKey = "other-signing-key.asc" // an unrelated key (forgeries, operator keys)
	OtherKeyring    = "other-keyring.gpg"
)

// Path is the absolute path of a committed key file.
func Path(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "keys", name)
}

// Signer loads a committed (passphrase-less) secret key.
func Signer(t testing.TB, name string) *sign.Signer {
	t.Helper()
	f, err := os.Open(Path(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := sign.LoadSigner(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// LoadKeyring loads a committed public keyring.
func LoadKeyring(t testing.TB, name string) *sign.Keyring {
	t.Helper()
	kr, err := sign.LoadKeyring(Path(name))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
