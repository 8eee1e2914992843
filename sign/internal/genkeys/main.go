// Command genkeys writes the throwaway OpenPGP keys the tests use into testdata/keys:
//
//	go run ./sign/internal/genkeys -out testdata/keys
//
// It makes two unrelated keys with sign.GenerateKey, passphrase-less, and writes for the first
// test-signing-key.asc (armoured secret), test-keyring.gpg (binary public) and test-keyring.asc
// (armoured public), and for the second other-signing-key.asc and other-keyring.gpg. The keys
// are public test fixtures: never use them to sign anything real.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ssmirror/ssmirror/sign"
)

func main() {
	out := flag.String("out", "testdata/keys", "directory to write the keys into")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "genkeys:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := write(dir, "ssmirror test signing key", "test", "test-signing-key.asc", "test-keyring.gpg", "test-keyring.asc"); err != nil {
		return err
	}
	return write(dir, "ssmirror other test key", "other", "other-signing-key.asc", "other-keyring.gpg", "")
}

func write(dir, name, local, secretFile, binFile, ascFile string) error {
	secret, public, err := sign.GenerateKey(name, local+"@ssmirror.invalid", nil)
	if err != nil {
		return err
	}
	files := map[string][]byte{secretFile: secret, binFile: public}
	if ascFile != "" {
		s, err := sign.LoadSigner(bytes.NewReader(secret), nil)
		if err != nil {
			return err
		}
		var asc bytes.Buffer
		if err := s.WriteArmoredPublicKeyring(&asc); err != nil {
			return err
		}
		files[ascFile] = asc.Bytes()
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
