// Package store is the object-store abstraction ssmirror reads from and publishes into: a
// bucket, a directory, or (read only) an HTTP(S) mirror.
//
// A Store holds objects under keys. Keys are slash-separated relative paths ("streams/v1/index.json",
// "jammy/amd64/20250718/squashfs"); they never start with "/", never contain "..", "\\" or NUL.
// Use ValidKey before a key from the network touches a store.
//
// The interface is small on purpose. Abilities that only some backends have (server-side copy,
// conditional create, compare-and-swap) are small interfaces found by type assertion (Copier,
// CreateExcluder, Swapper).
// Helpers written once over the interface (ReadAll, PutBytes, Exists) live in this package.
package store

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"time"
)

// ErrNotExist is returned (wrapped, with the key) when an object does not exist.
// It is fs.ErrNotExist, so errors.Is(err, fs.ErrNotExist) works too.
var ErrNotExist = fs.ErrNotExist

// ErrExist is returned by CreateExclusive when the key already exists.
var ErrExist = fs.ErrExist

// ErrChecksum is returned (wrapped, with the key and the two values) when what was written does
// not have the size or sha256 the caller said it must have. Nothing is left visible.
var ErrChecksum = errors.New("checksum mismatch")

// ErrPrecondition is returned (wrapped, with the key) by Swapper.Swap when the object is no longer
// the version the caller named: another writer replaced, created or deleted it meanwhile. Nothing
// was written.
var ErrPrecondition = errors.New("the object changed meanwhile (precondition failed)")

// ErrReadOnly is returned by the write methods of a read-only store (an HTTP source).
var ErrReadOnly = errors.New("store is read only")

// Info describes one object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
	// SHA256 is the lowercase hex sha256 of the content as verified and recorded when the object
	// was written through a Store, or "" when the backend does not know it (an object written by
	// something else). It is never derived from an ETag.
	SHA256 string
	// ETag is an opaque version tag the backend gives for the object's current content: it stays
	// the same while the object is untouched and changes when the object is replaced by other
	// bytes (a replacement by the same bytes may keep it: S3's single-part ETag is their MD5), so
	// a recorded ETag tells whether an object is still the one the mirror wrote. Stat, List and
	// the Info returned by a write give the same value for the same object. It is never a content
	// hash (an S3 multipart ETag is not an MD5): only compare it with another ETag of the same
	// key from the same backend. "" when the backend gives none.
	ETag string
}

// PutOptions says what Put must check and record.
type PutOptions struct {
	// Size is the exact number of bytes the reader must yield; -1 means unknown (small metadata
	// objects only: backends may buffer them). A reader yielding more or fewer bytes fails with
	// ErrChecksum and leaves nothing visible.
	Size int64
	// SHA256, when not empty, is the lowercase hex sha256 the content must have; a mismatch fails
	// with ErrChecksum and leaves nothing visible.
	SHA256 string
	// ContentType and CacheControl are recorded where the backend can (HTTP headers on S3).
	ContentType  string
	CacheControl string
}

// Store is an object store. Every method honours ctx: a cancelled context stops the work and,
// for Put, leaves nothing visible. Errors name the key and wrap the cause (use errors.Is).
type Store interface {
	// Stat describes the object at key, or fails with ErrNotExist.
	Stat(ctx context.Context, key string) (Info, error)

	// Open reads the object at key from byte offset on (offset 0: the whole object), or fails with
	// ErrNotExist. Readers that can (HTTP) resume an interrupted body themselves.
	Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error)

	// Put writes the object at key from r, hashing every byte as it passes. The object becomes
	// visible only when it is complete and matches opts.Size and opts.SHA256; on any failure
	// (mismatch, read error, cancelled context) nothing is visible and any previous object at key
	// is unchanged. The returned Info carries the sha256 computed while writing.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Info, error)

	// Delete removes the object at key. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error

	// List calls fn for every object whose key starts with prefix ("" for all), in lexical key
	// order. Info.SHA256 is filled only when the backend has it without one request per object.
	// An error returned by fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error
}

// Copier is a store that copies an object to another key without moving its bytes through the
// client (S3 CopyObject). The copy keeps the recorded sha256.
type Copier interface {
	Copy(ctx context.Context, dstKey, srcKey string, opts PutOptions) (Info, error)
}

// CreateExcluder is a store that can create an object only if the key does not exist yet
// (S3: If-None-Match: *; directory: O_EXCL). It fails with ErrExist when the key exists.
type CreateExcluder interface {
	CreateExclusive(ctx context.Context, key string, data []byte, opts PutOptions) (Info, error)
}

// Swapper is a store that replaces an object only if it is still the version the caller read: a
// compare-and-swap on an opaque version tag (S3: the ETag, with If-Match, or If-None-Match: * to
// create; directory: a read-compare-rename under an flock(2) lock; memory: under the store's
// mutex). The target's lease and state are written this way, so that a writer that lost its lease
// changes nothing.
//
// Tags are opaque: compare them only for equality and hand them back to Swap. Swaps of one key
// are atomic with respect to each other; a plain Put or Delete of the same key is not ordered with
// them, so keys written with Swap should be written only with Swap.
type Swapper interface {
	// ReadTagged reads the whole object at key with its current tag, or fails with ErrNotExist.
	// An object of more than limit bytes fails (limit <= 0: no limit).
	ReadTagged(ctx context.Context, key string, limit int64) (data []byte, tag string, err error)

	// Swap writes data at key only if the object's current tag is tag, or, when tag is "", only
	// if no object exists at key, and returns the new object's tag. Otherwise it fails with
	// ErrPrecondition and writes nothing. opts.Size is taken from len(data).
	Swap(ctx context.Context, key string, data []byte, tag string, opts PutOptions) (newTag string, err error)
}

// Batcher is a store that can make many new objects durable at once rather than one by one
// (the directory store: one fsync per file before its rename, otherwise). Batch returns a view
// of the store whose Put and Copy make an object visible, complete and verified, as usual, but
// may return before it is durable, and the flush that makes durable everything written through
// the view before it was called. Until flush succeeds a crash may leave such an object missing
// or with other content, so nothing that lists it (metadata) may be written before then. Such
// an object reports no SHA256 from Stat or List until it is durable.
type Batcher interface {
	Batch() (Store, func(ctx context.Context) error)
}

// Describer is a store that can say where it is, for messages ("s3://bucket/prefix", "/srv/mirror").
type Describer interface {
	Describe() string
}

// RangeOpener is a store that can read a bounded byte range of an object in one request (HTTP:
// Range: bytes=offset-end), so that several ranges of one large object can be fetched at once.
// The reader yields exactly length bytes or fails; like Open's, it resumes an interrupted body
// by itself where the backend can.
type RangeOpener interface {
	OpenRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}
