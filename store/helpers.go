package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
)

// ErrOverLimit is wrapped by ReadAll's error for an object larger than the limit it was given.
var ErrOverLimit = errors.New("object over the size limit")

// ReadAll reads the whole object at key, failing if it is larger than limit bytes (limit <= 0:
// no limit). Metadata files are read with it. An object whose size the opened reader knows
// (Sizer: a directory, an HTTP Content-Length) is refused before any of it is read; otherwise at
// most limit+1 bytes are.
func ReadAll(ctx context.Context, s Source, key string, limit int64) ([]byte, error) {
	rc, err := s.Open(ctx, key, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	sz, sized := rc.(Sizer)
	if sized && limit > 0 && sz.Size() > limit {
		return nil, fmt.Errorf("reading %s: %w: %d bytes, larger than the limit of %d bytes", key, ErrOverLimit, sz.Size(), limit)
	}
	var r io.Reader = rc
	if limit > 0 {
		r = io.LimitReader(rc, limit+1)
	}
	var data []byte
	if sized && sz.Size() >= 0 && (limit > 0 || sz.Size() <= 1<<30) {
		// One allocation of the right size: a 26 MB catalogue read by doubling costs
		// twice its size in copies and garbage.
		var buf bytes.Buffer
		buf.Grow(int(sz.Size()) + bytes.MinRead)
		_, err = buf.ReadFrom(r)
		data = buf.Bytes()
	} else {
		data, err = io.ReadAll(r)
	}
	if err != nil {
		// A *Error, so that a caller can tell a failure to read from bad content.
		return nil, NewError("reading", key, err)
	}
	if limit > 0 && int64(len(data)) > limit {
		return nil, fmt.Errorf("reading %s: %w: larger than the limit of %d bytes", key, ErrOverLimit, limit)
	}
	return data, nil
}

// Sizer is implemented by readers from Open that know how many bytes they will return (a
// hint: the reading still decides).
type Sizer interface {
	Size() int64 // -1 when unknown
}

// PutBytes writes data at key, checking nothing beyond its own length.
func PutBytes(ctx context.Context, s Target, key string, data []byte, opts PutOptions) (Info, error) {
	opts.Size = int64(len(data))
	return s.Put(ctx, key, bytes.NewReader(data), opts)
}

// Exists reports whether key exists. Errors other than not-found are returned.
func Exists(ctx context.Context, s Source, key string) (bool, error) {
	_, err := s.Stat(ctx, key)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, ErrNotExist) {
		return false, nil
	}
	return false, err
}

// Describe names a store for messages: the first Describer in its Unwrap chain, or its type.
func Describe(s Source) string {
	if d, ok := As[Describer](s); ok {
		return d.Describe()
	}
	return fmt.Sprintf("%T", s)
}

// ValidKey checks a key (or a path from a catalogue) before it touches a store: not empty, not
// absolute, no "." or ".." segment, no empty segment, no backslash, no NUL or other control
// character.
func ValidKey(key string) error {
	if key == "" {
		return invalidKey("empty path")
	}
	if strings.HasPrefix(key, "/") {
		return invalidKey(fmt.Sprintf("path %q is absolute", key))
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f {
			return invalidKey(fmt.Sprintf("path %q contains a control character", key))
		}
		if c == '\\' {
			return invalidKey(fmt.Sprintf("path %q contains a backslash", key))
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return invalidKey(fmt.Sprintf("path %q has an empty segment", key))
		case ".", "..":
			return invalidKey(fmt.Sprintf("path %q has a %q segment", key, seg))
		}
	}
	return nil
}

// ValidPrefix checks List's prefix: "" (everything), or a key, or a key followed by "/".
func ValidPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidKey(strings.TrimSuffix(prefix, "/"))
}

// invalidKey is ValidKey's error: its message says what is wrong, and it is ErrInvalidKey.
type invalidKey string

func (e invalidKey) Error() string { return string(e) }

func (e invalidKey) Unwrap() error { return ErrInvalidKey }

// Verifier hashes everything read through it and checks the total size and sha256 at the end.
// Backends wrap Put's reader in one; Check is called after the last byte, before the object is
// made visible.
type Verifier struct {
	r       io.Reader
	h       hash.Hash
	n       int64
	key     string
	opts    PutOptions
	trusted bool // the sha256 is checked by the reader itself (VerifiedReader)
}

// NewVerifier wraps r. When r checks its own sha256 (VerifiedReader) and it is opts.SHA256, v
// only counts the bytes and checks the size: every backend's Put reads to r's io.EOF, which r
// gives only once its sha256 checked out, before it makes anything visible.
func NewVerifier(key string, r io.Reader, opts PutOptions) *Verifier {
	v := &Verifier{r: r, h: sha256.New(), key: key, opts: opts}
	if vr, ok := r.(VerifiedReader); ok && opts.SHA256 != "" && strings.EqualFold(vr.VerifiedSHA256(), opts.SHA256) {
		v.trusted = true
	}
	return v
}

func (v *Verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if n > 0 {
		if aerr := v.Add(p[:n]); aerr != nil {
			return n, aerr
		}
	}
	return n, err
}

// Add hashes p as if it had been read through v: for a Put that takes its input as chunks
// (ChunkReader) rather than through Read. It fails as Read does on more bytes than opts.Size.
func (v *Verifier) Add(p []byte) error {
	if !v.trusted {
		v.h.Write(p)
	}
	v.n += int64(len(p))
	if v.opts.Size >= 0 && v.n > v.opts.Size {
		return &Error{Op: "put", Key: v.key, Err: fmt.Errorf("%w: more than the expected %d bytes", ErrChecksum, v.opts.Size)}
	}
	return nil
}

// N is the number of bytes read so far.
func (v *Verifier) N() int64 { return v.n }

// Sum is the hex sha256 of what was read so far (trusted: the one the reader checks, which is
// what was read once the reader has ended with io.EOF).
func (v *Verifier) Sum() string {
	if v.trusted {
		return strings.ToLower(v.opts.SHA256)
	}
	return hex.EncodeToString(v.h.Sum(nil))
}

// Check reports ErrChecksum in a *Error naming the key, with both values, when the size or sha256 read differ
// from what opts demands.
func (v *Verifier) Check() error {
	if v.opts.Size >= 0 && v.n != v.opts.Size {
		return &Error{Op: "put", Key: v.key, Err: fmt.Errorf("%w: size %d, expected %d", ErrChecksum, v.n, v.opts.Size)}
	}
	if v.opts.SHA256 != "" && !v.trusted {
		if got := v.Sum(); !strings.EqualFold(got, v.opts.SHA256) {
			return &Error{Op: "put", Key: v.key, Err: fmt.Errorf("%w: sha256 %s, expected %s", ErrChecksum, got, v.opts.SHA256)}
		}
	}
	return nil
}
