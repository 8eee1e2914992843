package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/sign"
)

const keygenUsage = `Usage: ssmirror keygen [flags]

Make an OpenPGP signing key for a curated mirror (sync --signing-key). Writes the armoured
secret key (mode 0600) and the public keyring in the binary form MAAS takes: give it to MAAS as
keyring_filename, or base64 of it as keyring_data. Existing files are never overwritten.
The passphrase, if any, comes from --passphrase-file or $SSMIRROR_SIGNING_PASSPHRASE. The key's
fingerprint is printed, to publish beside the keyring (clients compare it with gpg --show-keys).

Example:
  ssmirror keygen --name "Example mirror" --email mirror@example.com \
      --secret-key mirror-signing.asc --keyring mirror-keyring.gpg
  maas $PROFILE boot-sources create url=https://mirror.example.com/maas/ \
      keyring_data="$(base64 -w0 mirror-keyring.gpg)"
`

func runKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var name, email, secretOut, keyringOut, passFile string
	fl := newFlagSet("keygen", keygenUsage, stdout)
	fl.StringVar(&name, "name", "ssmirror signing key", "name in the key's user id")
	fl.StringVar(&email, "email", "", "email in the key's user id")
	fl.StringVar(&secretOut, "secret-key", "ssmirror-signing-key.asc", "where to write the armoured secret key")
	fl.StringVar(&keyringOut, "keyring", "ssmirror-keyring.gpg", "where to write the binary public keyring")
	fl.StringVar(&passFile, "passphrase-file", "", "file holding a passphrase to protect the secret key (default: $SSMIRROR_SIGNING_PASSPHRASE, else none)")
	if err := parse(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usagef("keygen takes no arguments")
	}
	for _, p := range []string{secretOut, keyringOut} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists; refusing to overwrite it", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	pass, err := cliconfig.ReadPassphrase(passFile, os.LookupEnv)
	if err != nil {
		return err
	}
	secret, public, err := sign.GenerateKey(name, email, pass)
	if err != nil {
		return err
	}
	if err := writeNew(secretOut, secret, 0o600); err != nil {
		return err
	}
	if err := writeNew(keyringOut, public, 0o644); err != nil {
		return err
	}
	kr, err := sign.ReadKeyring(bytes.NewReader(public))
	if err != nil {
		return fmt.Errorf("reading back the public keyring: %w", err)
	}
	fmt.Fprintf(stdout, "secret key: %s\npublic keyring: %s (give this to MAAS and other clients)\n", secretOut, keyringOut)
	for _, fp := range kr.Fingerprints() {
		fmt.Fprintf(stdout, "fingerprint: %s\n", groupFingerprint(fp))
	}
	return nil
}

// groupFingerprint writes a fingerprint in blocks of four, as gpg shows it, so that it can be
// compared by eye with gpg --show-keys.
func groupFingerprint(fp string) string {
	var b strings.Builder
	for i := 0; i < len(fp); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
			if i == len(fp)/2 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(fp[i:min(i+4, len(fp))])
	}
	return b.String()
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
