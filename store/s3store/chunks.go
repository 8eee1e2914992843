package s3store

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/ssmirror/ssmirror/store"
)

// The chunk path of Put: given a store.ChunkReader (a fan-out's tee), the parts of an upload
// are lists of the reader's chunks, sent as they are, rather than copies of them in part
// buffers. Such a Put takes nothing from the buffer budget: the chunks are the reader's memory,
// counted by the reader, and every one is released once the part it is in has been answered
// (or will not be sent), and all of them before Put returns. So a Put reading a tee never
// waits for a buffer another Put holds while waiting on its own tee.

// ChunkHold is the most bytes of a ChunkReader's chunks one Put of an object of size bytes
// (negative: unknown) holds before it can send any: one part (store.ChunkHolder). It holds
// more while earlier parts are in flight, as far as the reader lets it.
func (s *Store) ChunkHold(size int64) int64 {
	return partSizeOf(s.partSize, size)
}

var _ store.ChunkHolder = (*Store)(nil)

// putChunks is Put of the chunks of cr.
func (s *Store) putChunks(ctx context.Context, key string, cr store.ChunkReader, v *store.Verifier, opts store.PutOptions, partSize int64) (store.Info, error) {
	src := &chunkParts{cr: cr, v: v, c: s.checksum, partSize: partSize}
	defer src.close()
	first, err := src.next(ctx)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// The whole object fitted in one part.
		defer first.release()
		if err := v.Check(); err != nil {
			return store.Info{}, err
		}
		return s.putChunkObject(ctx, key, first, v.Sum(), opts)
	case err != nil:
		first.release()
		return store.Info{}, s.readError(key, v, opts, err)
	case opts.Size >= 0 && opts.Size <= partSize:
		// A known size of exactly one part: the input must end here.
		defer first.release()
		if err := src.atEnd(); err != nil {
			return store.Info{}, s.readError(key, v, opts, err)
		}
		if err := v.Check(); err != nil {
			return store.Info{}, err
		}
		return s.putChunkObject(ctx, key, first, v.Sum(), opts)
	}
	return s.putParts(ctx, key, v, opts, partSize, first, src)
}

// putChunkObject sends the one part p as the whole object, with one PutObject.
func (s *Store) putChunkObject(ctx context.Context, key string, p upPart, sum string, opts store.PutOptions) (store.Info, error) {
	mtime, etag, err := s.putObjectBody(ctx, key, int64(p.n), p.body, sum, p.sum, opts, nil)
	if err != nil {
		return store.Info{}, s.failf("put", key, "%w", err)
	}
	return store.Info{Key: key, Size: int64(p.n), SHA256: sum, ModTime: mtime, ETag: etag}, nil
}

// chunkRef counts the parts (and the reader's tail) holding one chunk: the chunk is released
// when the last of them lets go (a chunk may straddle two parts).
type chunkRef struct {
	holds   atomic.Int32
	release func()
}

func (r *chunkRef) drop() {
	if r.holds.Add(-1) == 0 {
		r.release()
	}
}

// chunkParts reads parts from a ChunkReader: partSize bytes of its chunks each, verified (v) and
// summed (c) as they arrive.
type chunkParts struct {
	cr       store.ChunkReader
	v        *store.Verifier
	c        Checksum
	partSize int64
	rest     []byte    // what the next part starts with: the tail of the last chunk read
	restRef  *chunkRef // that chunk
	err      error     // the reader's end or failure, once met
}

func (p *chunkParts) next(context.Context) (upPart, error) {
	var (
		pieces [][]byte
		refs   []*chunkRef
		n      int64
	)
	h := p.c.newHash()
	for n < p.partSize {
		if len(p.rest) == 0 {
			if p.err != nil {
				break
			}
			data, release, err := p.cr.ReadChunk()
			if err != nil {
				p.err = err
				break
			}
			ref := &chunkRef{release: release}
			ref.holds.Store(1)
			if err := p.v.Add(data); err != nil {
				ref.drop()
				p.err = err
				break
			}
			if len(data) == 0 {
				ref.drop()
				continue
			}
			p.rest, p.restRef = data, ref
		}
		piece := p.rest[:min(int64(len(p.rest)), p.partSize-n)]
		p.rest = p.rest[len(piece):]
		if h != nil {
			h.Write(piece)
		}
		pieces = append(pieces, piece)
		p.restRef.holds.Add(1)
		refs = append(refs, p.restRef)
		if len(p.rest) == 0 {
			p.restRef.drop()
			p.restRef = nil
		}
		n += int64(len(piece))
	}
	part := upPart{n: int(n), body: func() io.ReadSeeker { return newChunksBody(pieces, n) }, release: func() {
		for _, r := range refs {
			r.drop()
		}
	}}
	if h != nil {
		part.sum = p.c.finish(h, n)
	}
	if n == p.partSize {
		return part, nil
	}
	return part, p.err
}

func (p *chunkParts) atEnd() error {
	if len(p.rest) > 0 {
		return errMoreParts
	}
	for p.err == nil {
		data, release, err := p.cr.ReadChunk()
		if err != nil {
			p.err = err
			break
		}
		verr := p.v.Add(data)
		release()
		if verr != nil {
			p.err = verr
			return verr
		}
		if len(data) > 0 {
			return errMoreParts
		}
	}
	if p.err == io.EOF {
		return nil
	}
	return p.err
}

// close lets go of the tail of the last chunk read, if any.
func (p *chunkParts) close() {
	if p.restRef != nil {
		p.restRef.drop()
		p.rest, p.restRef = nil, nil
	}
}

// chunksBody reads a part held as a list of pieces of chunks; it seeks, so that the SDK can send
// a request again.
type chunksBody struct {
	pieces [][]byte
	size   int64
	pos    int64
	i, off int // the piece and offset in it at pos
}

func newChunksBody(pieces [][]byte, size int64) *chunksBody {
	return &chunksBody{pieces: pieces, size: size}
}

func (b *chunksBody) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && b.i < len(b.pieces) {
		c := copy(p[n:], b.pieces[b.i][b.off:])
		n += c
		if b.off += c; b.off == len(b.pieces[b.i]) {
			b.i, b.off = b.i+1, 0
		}
	}
	b.pos += int64(n)
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

var errSeek = errors.New("seek outside the part")

func (b *chunksBody) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += b.pos
	case io.SeekEnd:
		offset += b.size
	}
	if offset < 0 || offset > b.size {
		return b.pos, errSeek
	}
	b.pos, b.i, b.off = offset, 0, 0
	left := offset
	for b.i < len(b.pieces) && left >= int64(len(b.pieces[b.i])) {
		left -= int64(len(b.pieces[b.i]))
		b.i++
	}
	b.off = int(left)
	return offset, nil
}
