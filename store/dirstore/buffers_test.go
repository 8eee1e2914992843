package dirstore

import (
	"testing"
	"unsafe"
)

// TestBufferPoolKeepsAtMostKept: buffers put back beyond keptBuffers are released (a mapping is
// unmapped), those within it are handed out again, and every buffer is writeBuffer bytes at a
// multiple of directAlign.
func TestBufferPoolKeepsAtMostKept(t *testing.T) {
	var p bufferPool
	released := 0
	var bufs []*writeBuf
	for range keptBuffers + 3 {
		wb := p.get()
		if len(wb.b) != writeBuffer || uintptr(unsafe.Pointer(&wb.b[0]))%directAlign != 0 {
			t.Fatalf("a buffer of %d bytes at %p, want %d at a multiple of %d", len(wb.b), &wb.b[0], writeBuffer, directAlign)
		}
		wb.b[0], wb.b[len(wb.b)-1] = 1, 2 // writable end to end
		release := wb.release
		wb.release = func() {
			released++
			if release != nil {
				release()
			}
		}
		bufs = append(bufs, wb)
	}
	for _, wb := range bufs {
		p.put(wb)
	}
	if released != 3 || len(p.free) != keptBuffers {
		t.Fatalf("%d released, %d kept; want 3 and %d", released, len(p.free), keptBuffers)
	}
	kept := map[*writeBuf]bool{}
	for _, wb := range p.free {
		kept[wb] = true
	}
	for range keptBuffers {
		if wb := p.get(); !kept[wb] {
			t.Fatal("a new buffer was made while kept ones were free")
		}
	}
	if len(p.free) != 0 {
		t.Fatalf("%d free after taking every kept one", len(p.free))
	}
}
