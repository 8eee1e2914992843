package sign

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// Keyring is a set of public keys signatures are checked against. It is not modified after
// ReadKeyring and may be shared by goroutines.
type Keyring struct {
	entities openpgp.EntityList
}

const (
	armorPublicKey  = "PGP PUBLIC KEY BLOCK"
	armorPrivateKey = "PGP PRIVATE KEY BLOCK"
	armorSignature  = "PGP SIGNATURE"
)

// ReadKeyring reads a keyring, binary or ASCII-armoured, holding one or more keys. An armoured
// keyring may hold several concatenated PUBLIC KEY BLOCKs. GnuPG's keybox format (pubring.kbx)
// is not an OpenPGP keyring and is refused with a hint to export it.
func ReadKeyring(r io.Reader) (*Keyring, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading keyring: %w", err)
	}
	var el openpgp.EntityList
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return nil, errors.New("keyring is empty")
	case isArmored(data):
		el, err = readArmoredBlocks(data)
	case len(data) >= 12 && string(data[8:12]) == "KBXf":
		return nil, errors.New("this is a GnuPG keybox (.kbx), not an OpenPGP keyring; export one with `gpg --export KEYID > keyring.gpg`")
	default:
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("reading keyring: %w", err)
	}
	if len(el) == 0 {
		return nil, errors.New("keyring holds no usable key")
	}
	return &Keyring{entities: el}, nil
}

// LoadKeyring reads a keyring file. Errors name the file.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	kr, err := ReadKeyring(f)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return kr, nil
}

// Fingerprints lists the primary-key fingerprints in the keyring, upper-case hex, in file order.
func (kr *Keyring) Fingerprints() []string {
	if kr == nil {
		return nil
	}
	out := make([]string, 0, len(kr.entities))
	for _, e := range kr.entities {
		out = append(out, fingerprint(e))
	}
	return out
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

// isArmored reports whether data, after leading white space, starts with an armour header line.
func isArmored(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN PGP "))
}

// readArmoredBlocks reads every armoured block in data, each of which must be a PUBLIC or a
// PRIVATE KEY BLOCK, and returns the keys of all of them.
func readArmoredBlocks(data []byte) (openpgp.EntityList, error) {
	var el openpgp.EntityList
	begin := []byte("-----BEGIN PGP ")
	rest := data
	for n := 1; ; n++ {
		i := bytes.Index(rest, begin)
		if i < 0 {
			break
		}
		// The next block starts at the next BEGIN line after this one; armor.Decode reads
		// through a buffered reader, so give it one block at a time.
		block := rest[i:]
		next := len(block)
		if j := bytes.Index(block[len(begin):], begin); j >= 0 {
			next = len(begin) + j
		}
		block, rest = block[:next], block[next:]
		b, err := armor.Decode(bytes.NewReader(block))
		if err != nil {
			return nil, fmt.Errorf("armoured block %d: %w", n, err)
		}
		if b.Type != armorPublicKey && b.Type != armorPrivateKey {
			return nil, fmt.Errorf("armoured block %d is a %q, not a key", n, b.Type)
		}
		got, err := openpgp.ReadKeyRing(b.Body)
		if err != nil {
			return nil, fmt.Errorf("armoured block %d: %w", n, err)
		}
		el = append(el, got...)
	}
	return el, nil
}
