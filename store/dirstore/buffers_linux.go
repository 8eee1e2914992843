package dirstore

import "golang.org/x/sys/unix"

// hugePage is the size of the huge pages newWriteBuf asks for (x86-64, and arm64 with 4 KiB
// pages); a buffer (writeBuffer) is one.
const hugePage = 2 << 20

// newWriteBuf maps a buffer of its own, starting on a huge page boundary, and asks the kernel to
// back it with a huge page (madvise MADV_HUGEPAGE: transparent huge pages in "madvise" or
// "always" mode). A direct write (O_DIRECT) pins the buffer's pages and hands the device one
// segment per physically contiguous run, and the block layer makes requests of at most
// max_segments segments: from 4 KiB pages the writes of 1 MiB buffers went to this project's
// virtual disk as requests of about 512 KiB (3020 for 1.5 GB), from huge pages as whole
// buffers. Its host handles requests one at a time, each at a cost: 1.5 GB written with
// O_DIRECT took 0.98 s from small pages and 0.22-0.26 s from huge pages (docs/performance.md,
// "Huge pages for the direct writes", with the bench's directory case before and after). Where
// the kernel gives no huge page the buffer is as fast as one in the Go heap; where the mapping
// fails, it is one.
func newWriteBuf() *writeBuf {
	m, err := unix.Mmap(-1, 0, writeBuffer+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return heapWriteBuf()
	}
	b := alignedIn(m, hugePage)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // refused (no transparent huge pages): small pages
	return &writeBuf{b: b, release: func() { _ = unix.Munmap(m) }}
}
