package dirstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"golang.org/x/sys/unix"

	"github.com/ssmirror/ssmirror/store"
)

// TestContentWriterDirect: whole, aligned buffers are written with O_DIRECT and the partial last
// one without; the file holds exactly the bytes written.
func TestContentWriterDirect(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bp := writeBuffers.Get().(*[]byte)
	defer writeBuffers.Put(bp)
	buf := *bp
	w := newContentWriter(f, len(buf))
	if !w.direct {
		t.Skip("O_DIRECT is refused here (the file system does not support it)")
	}
	var want []byte
	for i, n := range []int{len(buf), len(buf), 12345} {
		rand.NewChaCha8([32]byte{byte(i)}).Read(buf[:n])
		want = append(want, buf[:n]...)
		if _, err := w.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if flags := fileFlags(t, f); (flags&unix.O_DIRECT != 0) != (n == len(buf)) || w.direct != (n == len(buf)) {
			t.Errorf("after a write of %d bytes: O_DIRECT %v, want it only while the buffers are whole", n, flags&unix.O_DIRECT != 0)
		}
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the file holds %d bytes, differing from the %d written", len(got), len(want))
	}
}

func fileFlags(t *testing.T, f *os.File) int {
	t.Helper()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}

// TestPutSizesAroundTheBuffer: Put stores exactly the bytes, with the right sha256, for sizes at
// and around multiples of the write buffer and of the O_DIRECT alignment, read in pieces of every
// size (a reader giving one byte at a time included).
func TestPutSizesAroundTheBuffer(t *testing.T) {
	s, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, size := range []int{writeBuffer - 1, writeBuffer, writeBuffer + 1, 3*writeBuffer + directAlign, 2*writeBuffer + directAlign - 1, 5*writeBuffer + 17} {
		data := make([]byte, size)
		rand.NewChaCha8([32]byte{byte(size), byte(size >> 8)}).Read(data)
		sum := sha256.Sum256(data)
		for _, r := range []struct {
			name string
			r    io.Reader
		}{{"whole", bytes.NewReader(data)}, {"one byte at a time", iotest.OneByteReader(bytes.NewReader(data))}} {
			key := "d/" + r.name
			info, err := s.Put(context.Background(), key, r.r, store.PutOptions{Size: int64(size), SHA256: hex.EncodeToString(sum[:])})
			if err != nil {
				t.Fatalf("%d bytes, %s: %v", size, r.name, err)
			}
			got, err := os.ReadFile(filepath.Join(s.Describe(), filepath.FromSlash(key)))
			if err != nil || !bytes.Equal(got, data) || info.Size != int64(size) {
				t.Fatalf("%d bytes, %s: the file holds %d bytes (%v), differing", size, r.name, len(got), err)
			}
		}
	}
}
