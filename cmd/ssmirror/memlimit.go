package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	gosync "sync"
)

// transferHeadroom is the garbage the heap may gather on top of what a transfer keeps live.
const transferHeadroom = 12 << 20

// limitTransferMemory sets a soft memory limit for sync's transfer stage (sync.Options.OnTransfer,
// given the most bytes of buffers the stage may hold) and returns what undoes it. The transfer's
// buffers are long-lived and reused, so without a limit the collector lets the heap grow to
// twice them (the default GOGC) before it runs: for the S3 store's and the ranged downloads'
// buffers that is some 40 MB of resident memory holding only garbage. The limit is what the
// process uses when the transfer starts (the catalogue, the plan), plus every buffer the
// transfer may take, plus transferHeadroom: it never asks the collector to go below what is
// live, so it costs a few more collections, never a stall. GOMEMLIMIT, when set, wins.
func limitTransferMemory(buffers int64) (undo func()) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
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
