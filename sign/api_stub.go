// Package sign verifies and makes the OpenPGP signatures SimpleStreams uses: clearsigned .sjson
// files and detached armoured .json.gpg signatures.
package sign

// THIS FILE IS A CONTRACT STUB: the signatures below are what sync/ and cmd/ call. The sign
// helper replaces the bodies (and may split the file), keeping the signatures.

import (
	"errors"
	"io"
)

var (
	ErrNoSignature  = errors.New("not signed")
	ErrUnknownKey   = errors.New("signed by a key not in the keyring")
	ErrBadSignature = errors.New("bad signature")
	ErrKeyExpired   = errors.New("signing key expired")
	ErrKeyRevoked   = errors.New("signing key revoked")
)

// Keyring is a set of public keys signatures are checked against.
type Keyring struct { /* helper fills */
}

// ReadKeyring reads a keyring, binary or ASCII-armoured, holding one or more keys.
func ReadKeyring(r io.Reader) (*Keyring, error) { panic("stub") }

// LoadKeyring reads a keyring file.
func LoadKeyring(path string) (*Keyring, error) { panic("stub") }

// IsClearsigned reports whether data is a clearsigned message.
func IsClearsigned(data []byte) bool { panic("stub") }

// VerifyClearsigned checks a clearsigned message against kr and returns the signed body (the
// JSON). Errors name the file (name) and wrap one of the Err values above.
func VerifyClearsigned(name string, data []byte, kr *Keyring) ([]byte, error) { panic("stub") }

// StripClearsigned returns the body of a clearsigned message without checking its signature
// (--no-verify).
func StripClearsigned(name string, data []byte) ([]byte, error) { panic("stub") }

// VerifyDetached checks an armoured (or binary) detached signature sig over data.
func VerifyDetached(name string, data, sig []byte, kr *Keyring) error { panic("stub") }

// Signer signs with the operator's key.
type Signer struct { /* helper fills */
}

// LoadSigner reads an armoured (or binary) secret key, decrypting it with passphrase if needed.
func LoadSigner(r io.Reader, passphrase []byte) (*Signer, error) { panic("stub") }

// ClearSign writes a clearsigned message (SHA512) of the bytes of r to w.
func (s *Signer) ClearSign(w io.Writer, r io.Reader) error { panic("stub") }

// DetachSign writes an armoured detached signature of the bytes of r to w.
func (s *Signer) DetachSign(w io.Writer, r io.Reader) error { panic("stub") }

// WritePublicKeyring writes the signer's public key as a binary keyring (MAAS keyring_filename).
func (s *Signer) WritePublicKeyring(w io.Writer) error { panic("stub") }

// Fingerprint is the signing key's fingerprint in upper-case hex.
func (s *Signer) Fingerprint() string { panic("stub") }

// GenerateKey makes a new signing key (name and email in its user id), returning the armoured
// secret key (encrypted with passphrase when it is not empty) and the binary public keyring.
func GenerateKey(name, email string, passphrase []byte) (secretArmored, publicKeyring []byte, err error) {
	panic("stub")
}
