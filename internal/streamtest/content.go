package streamtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// genContent is the deterministic pseudo-random content of one path: the AES-256-CTR key stream
// under a key derived from (seed, path). CTR mode makes any offset reachable without generating
// what comes before it, so Range requests on large generated files are cheap.
type genContent struct {
	block cipher.Block
	size  int64
	flip  int64 // offset of a byte served inverted (Corrupt), -1 for none
}

func newGenContent(seed int64, path string, size int64) *genContent {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	h.Write([]byte(path))
	block, err := aes.NewCipher(h.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	return &genContent{block: block, size: size, flip: -1}
}

// reader returns a fresh io.ReadSeeker over the content.
func (g *genContent) reader() *genReader { return &genReader{g: g} }

type genReader struct {
	g      *genContent
	off    int64
	stream cipher.Stream // positioned at off; nil after a Seek
}

func (r *genReader) Read(p []byte) (int, error) {
	if r.off >= r.g.size {
		return 0, io.EOF
	}
	if rest := r.g.size - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	if r.stream == nil {
		var iv [aes.BlockSize]byte
		binary.BigEndian.PutUint64(iv[8:], uint64(r.off/aes.BlockSize))
		r.stream = cipher.NewCTR(r.g.block, iv[:])
		if skip := r.off % aes.BlockSize; skip > 0 {
			var scratch [aes.BlockSize]byte
			r.stream.XORKeyStream(scratch[:skip], scratch[:skip])
		}
	}
	clear(p)
	r.stream.XORKeyStream(p, p)
	if f := r.g.flip; f >= r.off && f < r.off+int64(len(p)) {
		p[f-r.off] ^= 0xff
	}
	r.off += int64(len(p))
	return len(p), nil
}

func (r *genReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.g.size
	default:
		return 0, errors.New("streamtest: bad whence")
	}
	if offset < 0 {
		return 0, fmt.Errorf("streamtest: negative offset %d", offset)
	}
	r.off, r.stream = offset, nil
	return offset, nil
}

// errReader fails every read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
