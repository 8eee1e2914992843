package store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"github.com/ssmirror/ssmirror/store"
)

// claims is a reader that says it checks its own sha256 (store.VerifiedReader).
type claims struct {
	io.Reader
	sum string
}

func (c claims) VerifiedSHA256() string { return c.sum }

// TestVerifierTrust: a Verifier trusts the sha256 of a reader that checks its own only when it is
// the one the Put must have; it always checks the size; any other reader is hashed.
func TestVerifierTrust(t *testing.T) {
	data := []byte("the bytes")
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	other := hex.EncodeToString(make([]byte, 32))
	check := func(r io.Reader, opts store.PutOptions) (string, error) {
		v := store.NewVerifier("k", r, opts)
		if _, err := io.ReadAll(v); err != nil {
			return "", err
		}
		return v.Sum(), v.Check()
	}
	// Trusted: the reader's sum is the one wanted; the bytes are not hashed again.
	if got, err := check(claims{bytes.NewReader(data), sum}, store.PutOptions{Size: int64(len(data)), SHA256: sum}); err != nil || got != sum {
		t.Errorf("trusted reader: sum %s, %v", got, err)
	}
	// The size is still checked.
	if _, err := check(claims{bytes.NewReader(data[1:]), sum}, store.PutOptions{Size: int64(len(data)), SHA256: sum}); !errors.Is(err, store.ErrChecksum) {
		t.Errorf("trusted reader, short: %v", err)
	}
	// A reader that checks another sum than the one wanted is hashed: the mismatch is found.
	if _, err := check(claims{bytes.NewReader(data), sum}, store.PutOptions{Size: int64(len(data)), SHA256: other}); !errors.Is(err, store.ErrChecksum) {
		t.Errorf("reader checking another sum: %v", err)
	}
	// A plain reader is hashed.
	if _, err := check(bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: other}); !errors.Is(err, store.ErrChecksum) {
		t.Errorf("plain reader: %v", err)
	}
}
