package dirstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"unsafe"

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
	wb := writeBuffers.get()
	defer writeBuffers.put(wb)
	buf := wb.b
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
// and around smallFile, multiples of the write buffer and of the O_DIRECT alignment, read in pieces of every
// size (a reader giving one byte at a time included).
func TestPutSizesAroundTheBuffer(t *testing.T) {
	s, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, size := range []int{smallFile - 1, smallFile, smallFile + 1, smallFile + directAlign, writeBuffer - 1, writeBuffer, writeBuffer + 1, 3*writeBuffer + directAlign, 2*writeBuffer + directAlign - 1, 5*writeBuffer + 17} {
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

// TestWriteBufHugePages: a write buffer starts on a huge page boundary and, where transparent
// huge pages may be given to a mapping that asks (enabled "always" or "madvise", and a defrag
// mode that lets such a mapping wait for one), is backed by them once written to.
func TestWriteBufHugePages(t *testing.T) {
	wb := newWriteBuf()
	defer func() {
		if wb.release != nil {
			wb.release()
		}
	}()
	addr := uintptr(unsafe.Pointer(&wb.b[0]))
	if len(wb.b) != writeBuffer || addr%hugePage != 0 {
		t.Fatalf("buffer of %d bytes at %#x, want %d at a multiple of %d", len(wb.b), addr, writeBuffer, hugePage)
	}
	if wb.release == nil {
		t.Fatal("the buffer is not a mapping of its own (mmap failed)")
	}
	enabled, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || bytes.Contains(enabled, []byte("[never]")) {
		t.Skipf("no transparent huge pages here (%q, %v)", enabled, err)
	}
	defrag, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/defrag")
	if err != nil || !(bytes.Contains(defrag, []byte("[always]")) || bytes.Contains(defrag, []byte("[madvise]")) || bytes.Contains(defrag, []byte("[defer+madvise]"))) {
		t.Skipf("a mapping asking for huge pages does not wait for them here (defrag %q, %v)", defrag, err)
	}
	for i := range wb.b {
		wb.b[i] = byte(i)
	}
	if kb := anonHugeKB(t, addr); kb < writeBuffer/1024 {
		t.Errorf("the buffer's mapping has %d KiB in huge pages, want %d", kb, writeBuffer/1024)
	}
}

// anonHugeKB is the AnonHugePages of the mapping holding addr, from /proc/self/smaps.
func anonHugeKB(t *testing.T, addr uintptr) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		// A mapping's first line: "start-end perms offset dev inode [path]".
		if f := strings.Fields(line); len(f) >= 5 && len(f[1]) == 4 && strings.Contains(f[0], "-") {
			var lo, hi uintptr
			if n, _ := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); n == 2 {
				in = lo <= addr && addr < hi
				continue
			}
		}
		if in && strings.HasPrefix(line, "AnonHugePages:") {
			var kb int
			fmt.Sscanf(strings.TrimPrefix(line, "AnonHugePages:"), "%d", &kb)
			return kb
		}
	}
	t.Fatalf("no mapping holds %#x in /proc/self/smaps", addr)
	return 0
}
