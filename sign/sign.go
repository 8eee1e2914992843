// Package sign verifies and makes the OpenPGP signatures SimpleStreams uses: clearsigned .sjson
// files and detached armoured .json.gpg signatures.
//
// Verification errors name the file they are about and wrap one of the Err values below, so
// callers can tell an unsigned file from a forged one with errors.Is:
//
//	streams/v1/index.sjson: bad signature: openpgp: invalid signature: …
//
// Everything works on byte slices, readers and writers; nothing here prints or touches the
// network.
package sign

import (
	"errors"
	"fmt"
)

var (
	// ErrNoSignature means the data is not a signed message, or its signature block holds no
	// signature.
	ErrNoSignature = errors.New("not signed")
	// ErrUnknownKey means no signature in the message was made by a key in the keyring.
	ErrUnknownKey = errors.New("signed by a key not in the keyring")
	// ErrBadSignature means the signature does not match the signed bytes (a tampered body),
	// or is otherwise unacceptable (expired signature, hash not declared in the Hash header).
	ErrBadSignature = errors.New("bad signature")
	// ErrKeyExpired means the signature is mathematically good but the signing key has expired.
	ErrKeyExpired = errors.New("signing key expired")
	// ErrKeyRevoked means the signature is mathematically good but the signing key is revoked.
	ErrKeyRevoked = errors.New("signing key revoked")
	// ErrMalformed means the data looks like a signed message but cannot be parsed: truncated
	// or corrupt armour, text before the message or after its signature block (such as a second
	// message appended to the first), a non-signature packet.
	ErrMalformed = errors.New("malformed signed message")

	// ErrPassphraseRequired is returned by LoadSigner when the secret key is encrypted and no
	// passphrase was given; a caller may then ask the operator for one and retry.
	ErrPassphraseRequired = errors.New("secret key is encrypted and no passphrase was given")
	// ErrWrongPassphrase is returned by LoadSigner when the passphrase does not decrypt the key.
	ErrWrongPassphrase = errors.New("wrong passphrase for the secret key")
)

// fail builds a verification error: "<name>: <class>: <detail>", wrapping class and, when not
// nil, cause.
func fail(name string, class error, detail string, cause error) error {
	switch {
	case cause == nil && detail == "":
		return fmt.Errorf("%s: %w", name, class)
	case cause == nil:
		return fmt.Errorf("%s: %w: %s", name, class, detail)
	case detail == "":
		return fmt.Errorf("%s: %w: %w", name, class, cause)
	default:
		return fmt.Errorf("%s: %w: %s: %w", name, class, detail, cause)
	}
}
