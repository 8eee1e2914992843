package sign

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

// Signer signs with the operator's key. It may be shared by goroutines.
type Signer struct {
	entity *openpgp.Entity
	now    func() time.Time // the signature time; nil means time.Now (tests set it)
}

// LoadSigner reads an armoured (or binary) secret key, decrypting it with passphrase if needed.
// The input must hold exactly one secret key. An encrypted key with an empty passphrase gives
// ErrPassphraseRequired, a passphrase that does not decrypt it ErrWrongPassphrase. A key that
// cannot sign now (expired, revoked, no signing capability) is refused.
func LoadSigner(r io.Reader, passphrase []byte) (*Signer, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading secret key: %w", err)
	}
	var el openpgp.EntityList
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return nil, errors.New("secret key: the input is empty")
	case isArmored(data):
		el, err = readArmoredBlocks(data)
	default:
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	var secret []*openpgp.Entity
	for _, e := range el {
		if e.PrivateKey != nil {
			secret = append(secret, e)
		}
	}
	switch len(secret) {
	case 0:
		return nil, errors.New("secret key: the input holds only public keys (export the key with `gpg --export-secret-keys`)")
	case 1:
	default:
		return nil, fmt.Errorf("secret key: the input holds %d secret keys, want one", len(secret))
	}
	s := &Signer{entity: secret[0]}
	key, ok := s.entity.SigningKey(time.Now())
	if !ok {
		return nil, fmt.Errorf("secret key %s: no usable signing key (expired, revoked or not signing-capable)", s.Fingerprint())
	}
	if key.PrivateKey == nil || key.PrivateKey.Dummy() {
		return nil, fmt.Errorf("secret key %s: the secret part of signing key %s is not in the input", s.Fingerprint(), key.PublicKey.KeyIdString())
	}
	if key.PrivateKey.Encrypted {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("secret key %s: %w", s.Fingerprint(), ErrPassphraseRequired)
		}
		if err := s.entity.DecryptPrivateKeys(passphrase); err != nil {
			return nil, fmt.Errorf("secret key %s: %w (%w)", s.Fingerprint(), ErrWrongPassphrase, err)
		}
	}
	return s, nil
}

// config is the go-crypto configuration every signature uses.
func (s *Signer) config() *packet.Config {
	return &packet.Config{DefaultHash: crypto.SHA512, Time: s.now}
}

func (s *Signer) signingKey(cfg *packet.Config) (*packet.PrivateKey, error) {
	key, ok := s.entity.SigningKey(cfg.Now())
	if !ok || key.PrivateKey == nil {
		return nil, fmt.Errorf("key %s has no usable signing key", s.Fingerprint())
	}
	return key.PrivateKey, nil
}

// MaxClearsignLine is the longest line, in bytes without its line break, ClearSign accepts: the
// longest gpg --clearsign (GnuPG 2.2) handles without breaking the line ("input line longer
// than 19995 characters"). gpgv's armour reader refuses lines of 20,000 characters, the "- " of
// dash-escaping included. So compact one-line JSON cannot be clearsigned; indent it.
const MaxClearsignLine = 19993

// ClearSign writes a clearsigned message (SHA512) of the bytes of r to w. Lines starting with
// "-" are dash-escaped; trailing spaces, tabs and carriage returns on each line are dropped, as
// the format requires. A line longer than MaxClearsignLine is an error. Nothing is written to w
// on error.
//
// The signature block carries a CRC24 checksum line. go-crypto leaves it out of clearsigned
// messages (RFC 9580 makes it optional), but GnuPG 2.2's gpgv, which MAAS and simplestreams
// run, then misreads the block whenever its base64 ends without "=" padding: it takes the
// END line for data and fails ("invalid radix64 character 2D", exit 2) although the signature
// is good. That depends on the signature's length, so it failed about one time in ten.
func (s *Signer) ClearSign(w io.Writer, r io.Reader) error {
	cfg := s.config()
	key, err := s.signingKey(cfg)
	if err != nil {
		return fmt.Errorf("clearsign: %w", err)
	}
	var buf bytes.Buffer
	pt, err := clearsign.Encode(&buf, key, cfg)
	if err != nil {
		return fmt.Errorf("clearsign: %w", err)
	}
	if _, err := io.Copy(&lineLimiter{w: pt}, r); err != nil {
		return fmt.Errorf("clearsign: %w", err)
	}
	if err := pt.Close(); err != nil {
		return fmt.Errorf("clearsign: %w", err)
	}
	msg, err := withArmorChecksum(buf.Bytes())
	if err != nil {
		return fmt.Errorf("clearsign: %w", err)
	}
	_, err = w.Write(msg)
	return err
}

// withArmorChecksum re-armours the signature block that ends a clearsigned message, with a
// CRC24 checksum line; the text before it is kept byte for byte.
func withArmorChecksum(msg []byte) ([]byte, error) {
	i := bytes.LastIndex(msg, []byte("\n"+string(beginSignature)))
	if i < 0 {
		return nil, errors.New("no signature block in the encoded message")
	}
	block, err := armor.Decode(bytes.NewReader(msg[i+1:]))
	if err != nil {
		return nil, fmt.Errorf("re-reading the signature block: %w", err)
	}
	sig, err := io.ReadAll(block.Body)
	if err != nil {
		return nil, fmt.Errorf("re-reading the signature block: %w", err)
	}
	out := bytes.NewBuffer(bytes.Clone(msg[:i+1]))
	aw, err := armor.EncodeWithChecksumOption(out, block.Type, block.Header, true)
	if err != nil {
		return nil, err
	}
	if _, err := aw.Write(sig); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// lineLimiter passes bytes on to w, failing on a line longer than MaxClearsignLine.
type lineLimiter struct {
	w    io.Writer
	line int // line number, from 0
	n    int // bytes in the current line so far
}

func (l *lineLimiter) Write(p []byte) (int, error) {
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		seg := rest
		if i >= 0 {
			seg = rest[:i]
		}
		if l.n+len(seg) > MaxClearsignLine {
			return 0, fmt.Errorf("line %d is longer than %d bytes, more than GnuPG can verify in a clearsigned message", l.line+1, MaxClearsignLine)
		}
		if i < 0 {
			l.n += len(seg)
			break
		}
		l.n = 0
		l.line++
		rest = rest[i+1:]
	}
	return l.w.Write(p)
}

// DetachSign writes an armoured detached signature (SHA512, binary document signature) of the
// bytes of r to w.
func (s *Signer) DetachSign(w io.Writer, r io.Reader) error {
	if err := openpgp.ArmoredDetachSign(w, s.entity, r, s.config()); err != nil {
		return fmt.Errorf("detach-sign with key %s: %w", s.Fingerprint(), err)
	}
	return nil
}

// WritePublicKeyring writes the signer's public key as a binary keyring (MAAS keyring_filename;
// MAAS's keyring_data is its base64).
func (s *Signer) WritePublicKeyring(w io.Writer) error {
	if err := s.entity.Serialize(w); err != nil {
		return fmt.Errorf("writing public key %s: %w", s.Fingerprint(), err)
	}
	return nil
}

// WriteArmoredPublicKeyring writes the signer's public key as an ASCII-armoured PUBLIC KEY
// BLOCK, for people to import with gpg --import.
func (s *Signer) WriteArmoredPublicKeyring(w io.Writer) error {
	aw, err := armor.Encode(w, armorPublicKey, nil)
	if err != nil {
		return fmt.Errorf("writing public key %s: %w", s.Fingerprint(), err)
	}
	if err := s.WritePublicKeyring(aw); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("writing public key %s: %w", s.Fingerprint(), err)
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// Fingerprint is the signing key's fingerprint in upper-case hex.
func (s *Signer) Fingerprint() string {
	return fingerprint(s.entity)
}

// GenerateKey makes a new signing key (name and email in its user id), returning the armoured
// secret key (encrypted with passphrase when it is not empty) and the binary public keyring.
//
// The key is a v4 RSA 3072 primary key for signing and certifying with an RSA 3072 encryption
// subkey, no expiry, SHA512 preferred: what GnuPG 2.2 (Debian 12's gpgv) reads and verifies.
// The secret key is protected with iterated+salted S2K (SHA256) and AES-256 in CFB mode, the
// protection GnuPG 2.2 imports.
func GenerateKey(name, email string, passphrase []byte) (secretArmored, publicKeyring []byte, err error) {
	return generateKey(name, email, passphrase, &packet.Config{
		Algorithm:     packet.PubKeyAlgoRSA,
		RSABits:       3072,
		DefaultHash:   crypto.SHA512,
		DefaultCipher: packet.CipherAES256,
	})
}

// generateKey makes a key as GenerateKey describes with the algorithm, size and time of cfg.
func generateKey(name, email string, passphrase []byte, cfg *packet.Config) (secretArmored, publicKeyring []byte, err error) {
	if name == "" {
		return nil, nil, errors.New("generate key: the name is empty")
	}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	if len(passphrase) > 0 {
		protect := &packet.Config{
			DefaultCipher: packet.CipherAES256,
			S2KConfig: &s2k.Config{
				S2KMode:  s2k.IteratedSaltedS2K,
				Hash:     crypto.SHA256,
				S2KCount: 65011712,
			},
		}
		if err := e.EncryptPrivateKeys(passphrase, protect); err != nil {
			return nil, nil, fmt.Errorf("generate key: encrypting the secret key: %w", err)
		}
	}
	var sec bytes.Buffer
	aw, err := armor.Encode(&sec, armorPrivateKey, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	if err := e.SerializePrivateWithoutSigning(aw, nil); err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	sec.WriteString("\n")
	return sec.Bytes(), pub.Bytes(), nil
}
