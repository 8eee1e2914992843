// Package store is the object-store abstraction ssmirror reads from and publishes into: a
// bucket, a directory, or (read only) an HTTP(S) mirror.
//
// A store holds objects under keys. Keys are slash-separated relative paths ("streams/v1/index.json",
// "jammy/amd64/20250718/squashfs"); they never start with "/", never contain "..", "\\" or NUL.
// Every operation of every backend checks its key with ValidKey and fails with ErrInvalidKey
// before touching anything.
//
// There are two sides. A Source is what a mirror is read from: Stat and Open, nothing else (an
// HTTP(S) mirror is only that). A Target is what a mirror is published into: a Source that can
// also Put, Delete, List and compare-and-swap (Swapper), which every writable backend (memory,
// directory, S3) does, so the lease lock needs no run-time check. List belongs to Target, not
// Source: a sync never lists its upstream (the catalogue says what exists), HTTP cannot, and an
// S3 or directory source that could is a Target anyway.
//
// Abilities that only some backends have (server-side copy, within a store or from another,
// bounded ranges, removing what interrupted writes left behind, making many writes durable at
// once, naming themselves, holding transfer buffers of their own) are small interfaces found
// with As, which follows Unwrap through wrappers the way errors.As does: Copier, CopierFrom,
// RangeOpener, LeftoverCleaner, Batcher, Describer, BufferHolder. A wrapper (a rate limiter, a
// test fault injector) embeds what it wraps and gives it back from Unwrap, so the abilities it
// does not reimplement are still found.
//
// Apart from the abilities, fanout.go holds the fan-out protocol (ChunkReader, VerifiedReader,
// ChunkHolder): an agreement between a fan-out's tee and a backend's Put, which a backend may
// ignore.
//
// Every error a backend returns for an operation on a key is a *Error naming the operation and
// the key (like fs.PathError), wrapping the cause: errors.Is(err, ErrNotExist) tells a missing
// object, errors.As(err, &e) gives the key.
//
// Helpers written once over the interfaces (ReadAll, PutBytes, Exists, Describe) live in this
// package; storetest checks the contract against every backend.
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

// ErrInvalidKey is wrapped by every operation given a key ValidKey refuses.
var ErrInvalidKey = errors.New("invalid key")

// ErrChecksum is returned (wrapped, with the key and the two values) when what was written does
// not have the size or sha256 the caller said it must have. Nothing is left visible.
var ErrChecksum = errors.New("checksum mismatch")

// ErrPrecondition is returned (wrapped, with the key) by Swapper.Swap when the object is no longer
// the version the caller named: another writer replaced, created or deleted it meanwhile. Nothing
// was written.
var ErrPrecondition = errors.New("the object changed meanwhile (precondition failed)")

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

// Source is the read side of a store: what a mirror is read from. Every method honours ctx.
// Errors are *Error values naming the operation and the key, wrapping the cause (use errors.Is).
type Source interface {
	// Stat describes the object at key, or fails with ErrNotExist.
	Stat(ctx context.Context, key string) (Info, error)

	// Open reads the object at key from byte offset on (offset 0: the whole object), or fails with
	// ErrNotExist. Readers that can (HTTP) resume an interrupted body themselves.
	Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error)
}

// Target is the write side of a store: what a mirror is published into. Every method honours
// ctx: a cancelled context stops the work and, for Put and Swap, leaves nothing visible.
type Target interface {
	Source

	// Put writes the object at key from r, hashing every byte as it passes. The object becomes
	// visible only when it is complete and matches opts.Size and opts.SHA256; on any failure
	// (mismatch, read error, cancelled context) nothing is visible and any previous object at key
	// is unchanged. The returned Info carries the sha256 computed while writing.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Info, error)

	// Delete removes the object at key. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error

	// List calls fn for every object whose key starts with prefix ("" for all), in lexical key
	// order. Info.SHA256 is filled only when the backend has it without one request per object.
	// An error returned by fn stops the listing and is returned unchanged. A prefix is a key or
	// the start of one: "" or a string that ValidKey accepts once a trailing "/" is removed.
	List(ctx context.Context, prefix string, fn func(Info) error) error

	// The target's lease and state are written by compare-and-swap.
	Swapper
}

// Unwrapper is a wrapper around a store (a rate limiter, a fault injector in a test): Unwrap
// returns the store it wraps, so that As finds the abilities the wrapper does not have itself.
type Unwrapper interface {
	Unwrap() Source
}

// As finds the first store in s's chain of Unwrap calls that is a T, like errors.As: s itself,
// then s.Unwrap(), and so on. A wrapper that changes what an ability does (a rate limiter that
// slows ranges too) implements the ability itself, so it is found before what it wraps.
func As[T any](s Source) (T, bool) {
	for s != nil {
		if t, ok := s.(T); ok {
			return t, true
		}
		u, ok := s.(Unwrapper)
		if !ok {
			break
		}
		s = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Error is the error of an operation on one key, in the manner of fs.PathError: "op key: err".
// Backends return it from every operation that names a key; errors.Is sees through it to the
// cause (ErrNotExist, ErrChecksum, ErrPrecondition, ErrInvalidKey, a context's error).
type Error struct {
	Op  string // "stat", "open", "put", "delete", "list", "copy", "read", "swap"
	Key string // the key, as given to the store (for List: the prefix)
	Err error
}

func (e *Error) Error() string {
	if e.Key == "" { // the whole store (a listing of everything): the error names the store itself
		return e.Op + ": " + e.Err.Error()
	}
	return e.Op + " " + e.Key + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// NewError returns err as a *Error for op on key, or nil when err is nil. An err that already
// is a *Error for the same key is returned as it is, so layers do not repeat the key.
func NewError(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Key == key {
		return err
	}
	return &Error{Op: op, Key: key, Err: err}
}

// Copier is a store that copies an object to another key without moving its bytes through the
// client (S3 CopyObject). The copy keeps the recorded sha256.
type Copier interface {
	Copy(ctx context.Context, dstKey, srcKey string, opts PutOptions) (Info, error)
}

// CopierFrom is a target that can copy an object from another target on the same service
// without moving its bytes through the client (S3 CopyObject/UploadPartCopy across buckets of
// one endpoint). CanCopyFrom says whether src is such a target (the same service and
// credentials); CopyFrom then copies src's srcKey to dstKey, checked against opts like a Put
// (size, and the sha256 recorded on the source object), and fails without writing anything
// otherwise. A fan-out run uses it to bring a file one target holds into another.
type CopierFrom interface {
	CanCopyFrom(src Target) bool
	CopyFrom(ctx context.Context, dstKey string, src Target, srcKey string, opts PutOptions) (Info, error)
}

// Swapper replaces an object only if it is still the version the caller read: a
// compare-and-swap on an opaque version tag (S3: the ETag, with If-Match, or If-None-Match: * to
// create; directory: a read-compare-rename under an flock(2) lock; memory: under the store's
// mutex). Every Target is one. The target's lease and state are written this way, so that a
// writer that lost its lease changes nothing.
//
// Tags are opaque: compare them only for equality and hand them back to Swap. Swaps of one key
// are atomic with respect to each other; a plain Put or Delete of the same key is not ordered with
// them, so keys written with Swap should be written only with Swap.
type Swapper interface {
	// ReadTagged reads the whole object at key with its current tag, or fails with ErrNotExist.
	// An object of more than limit bytes fails (limit <= 0: no limit).
	ReadTagged(ctx context.Context, key string, limit int64) (data []byte, tag string, err error)

	// Swap writes data at key only if the object's current tag is tag, or, when tag is "", only
	// if no object exists at key (a create-exclusive: S3 If-None-Match: *), and returns the new
	// object's tag. Otherwise it fails with ErrPrecondition and writes nothing. opts.Size is taken
	// from len(data).
	Swap(ctx context.Context, key string, data []byte, tag string, opts PutOptions) (newTag string, err error)
}

// Batcher is a store that can make many new objects durable at once rather than one by one
// (the directory store: one fsync per file before its rename, otherwise). Batch returns a view
// of the store whose Put and Copy make an object visible, complete and verified, as usual, but
// may return before it is durable, and the flush that makes durable everything written through
// the view before it was called. Until flush succeeds a crash may leave such an object missing
// or with other content, so nothing that lists it (metadata) may be written before then. Such
// an object reports no SHA256 from Stat or List until it is durable. The view is a Target whose
// other methods are the store's own. A wrapper that changes Put or Copy (a fault injector)
// must implement Batch itself (or hide it): otherwise As finds the wrapped store's Batch, whose
// view writes around the wrapper.
type Batcher interface {
	Batch() (Target, func(ctx context.Context) error)
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

// LeftoverCleaner is a target that can remove what interrupted writes left behind and nobody
// will finish: S3's incomplete multipart uploads (which are billed, and invisible to List), a
// directory's temporary files. It removes only those opts selects, and returns how many it
// removed. Other writers may have writes in flight under the same store (another application in
// the bucket, a target nested under this one's prefix or directory): a caller says which
// leftovers are its own with opts.Mine.
type LeftoverCleaner interface {
	CleanLeftovers(ctx context.Context, opts LeftoverOptions) (int, error)
}

// LeftoverOptions select the leftovers CleanLeftovers removes.
type LeftoverOptions struct {
	// OlderThan keeps what was started (S3: initiated; a directory: last modified) less than
	// this long ago (0: any age).
	OlderThan time.Duration
	// Mine, when set, says whether a leftover is the caller's to remove. It is given the key
	// the interrupted write was for (S3: the upload's key) or, where the store cannot tell (a
	// directory's temporary file), the prefix of the directory the leftover is in ("a/b/", ""
	// for the root), which a key never is. Nil: every leftover under the store is.
	Mine func(keyOrDir string) bool
}

// Versioning is what a store does with the objects deleted from it. On a bucket with versioning
// (or object lock, which implies it) a delete only adds a delete marker: the object disappears
// from listings and reads, and its bytes stay, as a noncurrent version, until they are deleted
// by version (VersionDeleter) or by a lifecycle rule.
type Versioning struct {
	// Status is the bucket's versioning: "" (never enabled), "Enabled" or "Suspended".
	Status string `json:"status,omitempty"`
	// ObjectLock is true when the bucket has object lock enabled: versions under retention or a
	// legal hold cannot be deleted before it ends.
	ObjectLock bool `json:"object_lock,omitempty"`
}

// KeepsDeleted reports whether a delete may leave the object's bytes in the store.
func (v Versioning) KeepsDeleted() bool { return v.Status != "" || v.ObjectLock }

// VersioningReader is a store that can say what it does with deleted objects (S3:
// GetBucketVersioning and GetObjectLockConfiguration).
type VersioningReader interface {
	Versioning(ctx context.Context) (Versioning, error)
}

// ObjectVersion is one version of an object, or a delete marker, in a versioned store.
type ObjectVersion struct {
	ID           string
	ETag         string // as Info.ETag ("" for a delete marker)
	Size         int64
	DeleteMarker bool
	Latest       bool
}

// VersionDeleter is a versioned store whose versions can be listed and deleted for good.
// Versions lists those of exactly key (not of keys it is a prefix of), delete markers included;
// DeleteVersion deletes one, freeing its bytes (it fails for a version under retention).
type VersionDeleter interface {
	Versions(ctx context.Context, key string) ([]ObjectVersion, error)
	DeleteVersion(ctx context.Context, key, id string) error
}

// BufferHolder is a target that holds transfer buffers of its own (the S3 store's part
// buffers), which a caller budgeting a transfer's memory counts. BufferBudget is the most bytes
// they hold at once. SharedBuffers says where they come from: targets returning the same
// non-nil value (comparable) share one budget, counted once however many of them there are
// (the S3 targets of one run share one part-buffer budget); nil: a budget of the target's own.
type BufferHolder interface {
	BufferBudget() int64
	SharedBuffers() any
}
