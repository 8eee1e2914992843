package sync

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	gosync "sync"

	"github.com/ssmirror/ssmirror/store"
)

// BufferHolder is implemented by stores that hold transfer buffers of their own (the S3
// store's part buffers): BufferBudget is the most they hold at once.
type BufferHolder interface {
	BufferBudget() int64
}

// transferHeadroom is the garbage the heap may gather on top of what a transfer keeps live.
const transferHeadroom = 12 << 20

// limitTransferMemory sets a soft memory limit for the transfer stage and returns what undoes
// it. The transfer's buffers are long-lived and reused, so without a limit the collector lets
// the heap grow to twice them (the default GOGC) before it runs: for the S3 store's and the
// ranged downloads' buffers that is some 40 MB of resident memory holding only garbage. The
// limit is what the process uses when the transfer starts (the catalogue, the plan), plus every
// buffer the transfer may take, plus transferHeadroom: it never asks the collector to go below
// what is live, so it costs a few more collections, never a stall. GOMEMLIMIT, when set, wins.
func limitTransferMemory(dst store.Store, opts *Options) (undo func()) {
	if !opts.LimitMemory || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	buffers := int64(0)
	if _, chunk, slots := opts.rangeParams(); slots > 0 {
		buffers += int64(slots) * chunk
	}
	if h, ok := dst.(BufferHolder); ok {
		buffers += h.BufferBudget()
	}
	memLimit.enter(buffers)
	return func() { memLimit.leave(buffers) }
}

// memLimit keeps the soft limit right when transfers overlap in one process (tests, a
// program running several syncs): the first sets it from what is in use then, each adds its
// buffers while it runs, and the last one out puts back the limit that was there before.
var memLimit memLimiter

type memLimiter struct {
	mu      gosync.Mutex
	users   int
	before  int64 // the limit before the first user
	base    int64 // memory in use when the first user came
	buffers int64 // the buffers of the users now running
}

func (m *memLimiter) enter(buffers int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users == 0 {
		sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(sample)
		m.base = int64(sample[0].Value.Uint64() - sample[1].Value.Uint64())
		m.before = debug.SetMemoryLimit(-1)
	}
	m.users++
	m.buffers += buffers
	debug.SetMemoryLimit(m.base + m.buffers + transferHeadroom)
}

func (m *memLimiter) leave(buffers int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users--
	m.buffers -= buffers
	if m.users == 0 {
		debug.SetMemoryLimit(m.before)
		return
	}
	debug.SetMemoryLimit(m.base + m.buffers + transferHeadroom)
}
