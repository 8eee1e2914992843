package store

import "io"

// The fan-out protocol: how a stream written into several targets at once (a fan-out run's
// tee, in sync/internal/tee) hands its bytes to a target's Put without a copy per target and
// without hashing them once per target. It is not an ability of a store but an agreement
// between that tee and a backend's Put: a backend need not know it (every reader is an
// io.Reader, read as any other), and one that does (s3store, see its chunks.go) saves the
// copies and the hashing.
//
//   - The tee gives every Put a reader that is a ChunkReader and a VerifiedReader.
//   - A Put that keeps chunks instead of copying them (ChunkHolder) reads them with ReadChunk,
//     and releases each as soon as it no longer needs its bytes.
//   - The tee keeps room for what each Put must hold before it can send anything (ChunkHold),
//     so a Put that holds no more than that is never stalled by the tee.
//   - A Put given a VerifiedReader whose VerifiedSHA256 is the sha256 it must check may leave
//     the hashing to the reader (NewVerifier does), and still checks the size.

// ChunkReader is a reader that can also hand its bytes over as shared chunks instead of copying
// them (a fan-out's tee: the chunks of one stream are shared by every target it is written
// into). ReadChunk returns the next chunk of the stream: data must not be changed, and stays
// valid until release is called, which the caller must do exactly once, as soon as it no longer
// needs the bytes (they count against the reader's memory budget until then, and the reader may
// wait for them before it reads further). At the end of the stream it returns io.EOF (or the
// stream's failure) with no data and a nil release. A reader used through ReadChunk is not read
// through Read too.
//
// Put takes a ChunkReader as any io.Reader; a backend that keeps chunks rather than copying them
// (S3: the parts of an upload are lists of chunks) says how much of them it holds (ChunkHolder),
// and releases every chunk before Put returns, whatever the outcome.
type ChunkReader interface {
	io.Reader
	ReadChunk() (data []byte, release func(), err error)
}

// VerifiedReader is a reader that checks its own stream: it returns io.EOF only once what it
// yielded has the sha256 VerifiedSHA256 names (and the size its producer declared), and ends
// with an error instead otherwise (a fan-out's tee: the stream is checked once for all its
// targets). A Put given one whose VerifiedSHA256 equals opts.SHA256 may skip hashing the bytes
// itself: it still checks the size, and makes nothing visible before the reader's io.EOF.
type VerifiedReader interface {
	VerifiedSHA256() string
}

// ChunkHolder is a target whose Put, given a ChunkReader, keeps the chunks it reads (until they
// are sent) instead of copying them into buffers of its own. ChunkHold is the most bytes of
// chunks one Put of an object of size bytes must hold before it can send anything and release
// some (S3: one part): a reader that lets it hold that much (plus one chunk) never stalls it.
type ChunkHolder interface {
	ChunkHold(size int64) int64
}
