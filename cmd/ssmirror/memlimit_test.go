package main

import (
	"runtime/debug"
	"testing"
)

// TestLimitTransferMemory: during a transfer the soft limit is what was in use when it started
// plus its buffers and transferHeadroom; afterwards the limit before is back; GOMEMLIMIT wins.
func TestLimitTransferMemory(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	const buffers = 32<<20 + 18*(2<<20) // an S3 target's parts and the default ranged budget

	undo := limitTransferMemory(buffers)
	floor := int64(buffers + transferHeadroom)
	if got := debug.SetMemoryLimit(-1); got < floor || got > floor+(1<<30) {
		t.Errorf("limit %d during the transfer; want the buffers and headroom (%d) over what is in use", got, floor)
	}
	undo()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit %d after the transfer, want %d back", got, before)
	}

	t.Setenv("GOMEMLIMIT", "1GiB")
	undo = limitTransferMemory(buffers)
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("GOMEMLIMIT set, yet the limit changed to %d", got)
	}
	undo()
}

// TestLimitTransferMemoryOverlapping: transfers that overlap in one process, ending in any
// order, leave the limit as it was before the first.
func TestLimitTransferMemoryOverlapping(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	a := limitTransferMemory(32 << 20)
	withA := debug.SetMemoryLimit(-1)
	b := limitTransferMemory(64 << 20)
	if got := debug.SetMemoryLimit(-1); got != withA+64<<20 {
		t.Errorf("second transfer: limit %d, want the first's %d plus its 64 MiB", got, withA)
	}
	a() // the first ends before the second
	if got := debug.SetMemoryLimit(-1); got != withA+32<<20 {
		t.Errorf("after the first ended: limit %d, want %d", got, withA+32<<20)
	}
	b()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("after both: limit %d, want %d back", got, before)
	}
}
