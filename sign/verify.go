package sign

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

var (
	beginSigned    = []byte("-----BEGIN PGP SIGNED MESSAGE-----")
	beginSignature = []byte("-----BEGIN PGP SIGNATURE-----")
)

// IsClearsigned reports whether data is a clearsigned message: whether it starts with the
// "-----BEGIN PGP SIGNED MESSAGE-----" line. It does not check that the rest is well formed.
func IsClearsigned(data []byte) bool {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	return bytes.Equal(bytes.TrimRight(line, " \t\r"), beginSigned)
}

// VerifyClearsigned checks a clearsigned message against kr and returns the signed body (the
// JSON). Errors name the file (name) and wrap one of the Err values of this package.
//
// The body is the text between the headers and the signature block with dash-escaping undone,
// lines joined by "\n", as RFC 4880 §7.1 defines the signed text: trailing spaces and tabs on
// each line and carriage returns are not part of it, nor is the line break just before the
// signature block. For a message made by ClearSign that is exactly the bytes that were signed
// (ClearSign ends the body with its own line break). GnuPG folds the file's final line break
// into that separator, so a body it signed comes back without a final "\n".
//
// The message must be the whole of data: text before it, or anything but white space after its
// signature block (such as a second signed message), is ErrMalformed.
func VerifyClearsigned(name string, data []byte, kr *Keyring) ([]byte, error) {
	b, err := decodeClearsigned(name, data)
	if err != nil {
		return nil, err
	}
	sigs, raw, err := readSignatures(name, b.ArmoredSignature.Body)
	if err != nil {
		return nil, err
	}
	if declared := b.Headers.Values("Hash"); len(declared) > 0 {
		for _, s := range sigs {
			if hn := hashName(s.Hash); !slices.Contains(declared, hn) {
				return nil, fail(name, ErrBadSignature, fmt.Sprintf("signature uses hash %s, not declared in the Hash header (%s)", hn, strings.Join(declared, ", ")), nil)
			}
		}
	}
	if err := check(name, b.Bytes, sigs, raw, kr); err != nil {
		return nil, err
	}
	return b.Plaintext, nil
}

// StripClearsigned returns the body of a clearsigned message without checking its signature
// (--no-verify). The body is the one VerifyClearsigned would return; the message must be as
// well formed as VerifyClearsigned requires.
func StripClearsigned(name string, data []byte) ([]byte, error) {
	b, err := decodeClearsigned(name, data)
	if err != nil {
		return nil, err
	}
	return b.Plaintext, nil
}

// VerifyDetached checks an armoured (or binary) detached signature sig over data. Errors name
// the file (name) and wrap one of the Err values of this package.
func VerifyDetached(name string, data, sig []byte, kr *Keyring) error {
	var body io.Reader
	switch {
	case len(bytes.TrimSpace(sig)) == 0:
		return fail(name, ErrNoSignature, "the signature is empty", nil)
	case isArmored(sig):
		trimmed := bytes.TrimLeft(sig, " \t\r\n")
		if !bytes.HasPrefix(trimmed, beginSignature) {
			line, _, _ := bytes.Cut(trimmed, []byte("\n"))
			return fail(name, ErrMalformed, fmt.Sprintf("want an armoured PGP SIGNATURE, got %q", bytes.TrimSpace(line)), nil)
		}
		ab, err := armor.Decode(bytes.NewReader(trimmed))
		if err != nil {
			return fail(name, ErrMalformed, "signature armour", err)
		}
		body = ab.Body
	default:
		body = bytes.NewReader(sig)
	}
	sigs, raw, err := readSignatures(name, body)
	if err != nil {
		return err
	}
	return check(name, data, sigs, raw, kr)
}

// decodeClearsigned parses a clearsigned message that must fill data.
func decodeClearsigned(name string, data []byte) (*clearsign.Block, error) {
	if !IsClearsigned(data) {
		if i := bytes.Index(data, beginSigned); i >= 0 {
			return nil, fail(name, ErrMalformed, fmt.Sprintf("%d bytes of text before the signed message", i), nil)
		}
		return nil, fail(name, ErrNoSignature, "not a clearsigned message", nil)
	}
	b, rest := clearsign.Decode(data)
	if b == nil {
		detail := "malformed headers or signature block (truncated?)"
		switch {
		case !bytes.Contains(data, beginSignature):
			detail = "no signature block (truncated?)"
		case !bytes.Contains(data, []byte("-----END PGP SIGNATURE-----")):
			detail = "signature block has no END line (truncated?)"
		}
		return nil, fail(name, ErrMalformed, detail, nil)
	}
	if b.ArmoredSignature.Type != armorSignature {
		return nil, fail(name, ErrMalformed, fmt.Sprintf("signature block is a %q", b.ArmoredSignature.Type), nil)
	}
	if rest = bytes.TrimSpace(rest); len(rest) > 0 {
		if bytes.Contains(rest, beginSigned) {
			return nil, fail(name, ErrMalformed, "a second signed message follows the first", nil)
		}
		return nil, fail(name, ErrMalformed, fmt.Sprintf("%d bytes after the signature block", len(rest)), nil)
	}
	return b, nil
}

// readSignatures reads every packet of a signature block, which must all be signatures over
// data (binary or text), and returns them parsed and as raw bytes for go-crypto's verifier.
func readSignatures(name string, r io.Reader) ([]*packet.Signature, []byte, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fail(name, ErrMalformed, "signature block", err)
	}
	var sigs []*packet.Signature
	pr := packet.NewReader(bytes.NewReader(raw))
	for {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fail(name, ErrMalformed, "signature block", err)
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			return nil, nil, fail(name, ErrMalformed, fmt.Sprintf("signature block holds a %s packet", strings.TrimPrefix(fmt.Sprintf("%T", p), "*packet.")), nil)
		}
		if s.SigType != packet.SigTypeBinary && s.SigType != packet.SigTypeText {
			return nil, nil, fail(name, ErrMalformed, fmt.Sprintf("signature of type %#x is not a document signature", uint8(s.SigType)), nil)
		}
		if s.IssuerKeyId == nil {
			return nil, nil, fail(name, ErrMalformed, "signature names no issuer key", nil)
		}
		sigs = append(sigs, s)
	}
	if len(sigs) == 0 {
		return nil, nil, fail(name, ErrNoSignature, "the signature block holds no signature", nil)
	}
	return sigs, raw, nil
}

// check verifies the signatures raw (parsed as sigs) over signed against kr. As go-crypto
// does, the first signature made by a key in kr decides.
func check(name string, signed []byte, sigs []*packet.Signature, raw []byte, kr *Keyring) error {
	if kr == nil || len(kr.entities) == 0 {
		return fail(name, ErrUnknownKey, "the keyring is empty", nil)
	}
	_, signer, err := openpgp.VerifyDetachedSignature(kr.entities, bytes.NewReader(signed), bytes.NewReader(raw), nil)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return fail(name, ErrUnknownKey, "issuer key ID "+issuers(sigs), nil)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return fail(name, ErrKeyExpired, signerName(signer), err)
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return fail(name, ErrKeyRevoked, signerName(signer), err)
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return fail(name, ErrBadSignature, "the signature by key ID "+issuers(sigs)+" has expired", err)
	default:
		return fail(name, ErrBadSignature, "the signature by key ID "+issuers(sigs)+" does not match the signed content", err)
	}
}

// issuers lists the issuer key IDs of sigs.
func issuers(sigs []*packet.Signature) string {
	ids := make([]string, 0, len(sigs))
	for _, s := range sigs {
		ids = append(ids, fmt.Sprintf("%016X", *s.IssuerKeyId))
	}
	return strings.Join(ids, ", ")
}

// signerName names a key in an error message.
func signerName(e *openpgp.Entity) string {
	if e == nil {
		return "key"
	}
	return "key " + fingerprint(e)
}

// hashName is the name of h in a clearsigned message's Hash header.
func hashName(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "SHA1"
	case crypto.SHA224:
		return "SHA224"
	case crypto.SHA256:
		return "SHA256"
	case crypto.SHA384:
		return "SHA384"
	case crypto.SHA512:
		return "SHA512"
	case crypto.SHA3_256:
		return "SHA3-256"
	case crypto.SHA3_512:
		return "SHA3-512"
	case crypto.MD5:
		return "MD5"
	case crypto.RIPEMD160:
		return "RIPEMD160"
	}
	return h.String()
}
