package sync

import "github.com/ssmirror/ssmirror/store"

// transferBuffers is the most bytes of buffers the transfer stage into dsts may hold at once: the
// run's ranged-download chunks (one budget, whatever the number of targets), the targets' own
// buffers (store.BufferHolder: once per budget, however many targets share it) and tee, the fan-out's
// chunks (one FanOutBuffer for the run: the targets of a file share its chunks).
func transferBuffers(dsts []store.Target, opts *Options, tee int64) int64 {
	buffers := tee
	buffers += int64(opts.RangeConnections) * opts.RangeChunk
	counted := map[any]bool{}
	for _, dst := range dsts {
		if h, ok := store.As[store.BufferHolder](dst); ok {
			if shared := h.SharedBuffers(); shared != nil {
				if counted[shared] {
					continue
				}
				counted[shared] = true
			}
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
