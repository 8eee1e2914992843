package sync

import (
	"runtime/debug"
	"testing"

	"github.com/ssmirror/ssmirror/store/memstore"
)

// bufferStore is a store that says it holds part buffers.
type bufferStore struct {
	*memstore.Store
	budget int64
}

func (b bufferStore) BufferBudget() int64 { return b.budget }

func TestLimitTransferMemory(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	dst := bufferStore{memstore.New(), 32 << 20}

	undo := limitTransferMemory(dst, &Options{})
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("without LimitMemory the limit changed to %d", got)
	}
	undo()

	opts := &Options{LimitMemory: true}
	undo = limitTransferMemory(dst, opts)
	_, chunk, slots := opts.rangeParams()
	floor := 32<<20 + int64(slots)*chunk + transferHeadroom
	if got := debug.SetMemoryLimit(-1); got < floor || got > floor+(1<<30) {
		t.Errorf("limit %d during the transfer; want the buffers and headroom (%d) over what is in use", got, floor)
	}
	undo()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit %d after the transfer, want %d back", got, before)
	}

	t.Setenv("GOMEMLIMIT", "1GiB")
	undo = limitTransferMemory(dst, &Options{LimitMemory: true})
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
	a := limitTransferMemory(bufferStore{memstore.New(), 32 << 20}, &Options{LimitMemory: true, RangeStreams: 1})
	withA := debug.SetMemoryLimit(-1)
	b := limitTransferMemory(bufferStore{memstore.New(), 64 << 20}, &Options{LimitMemory: true, RangeStreams: 1})
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
