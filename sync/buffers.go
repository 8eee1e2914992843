package sync

import "github.com/ssmirror/ssmirror/store"

// BufferHolder is implemented by stores that hold transfer buffers of their own (the S3
// store's part buffers): BufferBudget is the most they hold at once.
type BufferHolder interface {
	BufferBudget() int64
}

// transferBuffers is the most bytes of buffers the transfer stage into dst may hold at once: the
// run's ranged-download chunks and the target's own buffers (BufferHolder).
func transferBuffers(dst store.Store, opts *Options) int64 {
	buffers := int64(0)
	if _, chunk, pool := opts.rangeParams(); pool != nil {
		buffers += int64(pool.Slots()) * chunk
	}
	if h, ok := dst.(BufferHolder); ok {
		buffers += h.BufferBudget()
	}
	return buffers
}

// startTransfer tells Options.OnTransfer that the transfer stage starts, and returns what tells
// it the stage ended.
func startTransfer(dst store.Store, opts *Options) (done func()) {
	if opts.OnTransfer == nil {
		return func() {}
	}
	if done := opts.OnTransfer(transferBuffers(dst, opts)); done != nil {
		return done
	}
	return func() {}
}
