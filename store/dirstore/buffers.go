package dirstore

import (
	gosync "sync"
	"unsafe"
)

// writeBuffers holds the buffers of writeBuffer bytes that Puts read files into and write them
// from, for reuse from one Put to the next. Each starts at a multiple of directAlign (so that
// contentWriter can write it with O_DIRECT) and, on Linux, is its own mapping backed by huge
// pages where the kernel gives them (newWriteBuf).
var writeBuffers bufferPool

// writeBuf is one of writeBuffers' buffers.
type writeBuf struct {
	b       []byte // writeBuffer bytes
	release func() // gives its memory back (nil: the garbage collector's)
}

// bufferPool keeps at most keptBuffers buffers that are not in use; one put back beyond those
// is released. Buffers are kept here rather than in a sync.Pool because a mapping is not the
// garbage collector's to free.
type bufferPool struct {
	mu   gosync.Mutex
	free []*writeBuf
}

// keptBuffers: the free buffers a pool keeps (the default --concurrency's Puts, and a few more).
const keptBuffers = 8

func (p *bufferPool) get() *writeBuf {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		wb := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return wb
	}
	p.mu.Unlock()
	return newWriteBuf()
}

func (p *bufferPool) put(wb *writeBuf) {
	p.mu.Lock()
	if len(p.free) < keptBuffers {
		p.free = append(p.free, wb)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	if wb.release != nil {
		wb.release()
	}
}

// heapWriteBuf is a writeBuf in the Go heap, aligned to directAlign.
func heapWriteBuf() *writeBuf {
	return &writeBuf{b: alignedIn(make([]byte, writeBuffer+directAlign), directAlign)}
}

// alignedIn is the writeBuffer bytes of b from its first address that is a multiple of align (b
// holds writeBuffer+align bytes).
func alignedIn(b []byte, align int) []byte {
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % uintptr(align)); r != 0 {
		skip = align - r
	}
	return b[skip : skip+writeBuffer : skip+writeBuffer]
}
