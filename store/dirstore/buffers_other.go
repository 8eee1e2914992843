//go:build !linux

package dirstore

// newWriteBuf is a buffer in the Go heap (huge pages for direct writes are for Linux only).
func newWriteBuf() *writeBuf { return heapWriteBuf() }
