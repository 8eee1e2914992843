package sync

import "github.com/ssmirror/ssmirror/store"

// BufferHolder is implemented by stores that hold transfer buffers of their own (the S3
// store's part buffers): BufferBudget is the most they hold at once.
type BufferHolder interface {
	BufferBudget() int64
}

// transferBuffers is the most bytes of buffers the transfer stage into dsts may hold at once: the
// run's ranged-download chunks (one budget, whatever the number of targets), each target's own
// buffers (BufferHolder) and tee, the fan-out's buffers (one FanOutBuffer per file in flight:
// the targets of a file share its chunks).
func transferBuffers(dsts []store.Target, opts *Options, tee int64) int64 {
	buffers := tee
	if _, chunk, slots := opts.rangeParams(); slots > 0 {
		buffers += int64(slots) * chunk
	}
	for _, dst := range dsts {
		if h, ok := store.As[BufferHolder](dst); ok {
			buffers += h.BufferBudget()
		}
	}
	return buffers
}

// startTransfer tells Options.OnTransfer that the transfer stage starts, and returns what tells
// it the stage ended.
func startTransfer(dsts []store.Target, opts *Options, tee int64) (done func()) {
	if opts.OnTransfer == nil {
		return func() {}
	}
	if done := opts.OnTransfer(transferBuffers(dsts, opts, tee)); done != nil {
		return done
	}
	return func() {}
}
