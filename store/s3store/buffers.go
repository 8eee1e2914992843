package s3store

import (
	"context"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// Buffers is a budget of part buffers (and a free list of them) that every Put of the stores
// given it in Options.Buffers takes its buffers from: one run writing into several S3 targets
// holds one budget, not one per target. It is safe for concurrent use.
//
// The budget counts in units of one part of its part size; a buffer larger than that (the parts
// of an object above MaxParts parts) takes as many units as it holds. A waiting Put always gets
// its buffer eventually: every buffer taken is released when its part has been answered, and
// the budget is handed out first come, first served.
type Buffers struct {
	unit  int64 // the part size the budget counts in
	units int64 // the budget, in units
	sem   *semaphore.Weighted
	free  chan []byte // free buffers of unit bytes

	inUse, peak atomic.Int64 // units taken now, and the most at once
}

// NewBuffers returns a budget of budget bytes (zero: DefaultBufferBudget; at least two parts)
// of part buffers of partSize bytes (zero: DefaultPartSize; raised to MinPartSize, lowered to
// MaxPartSize, as Options.PartSize is).
func NewBuffers(budget, partSize int64) *Buffers {
	partSize = normalPartSize(partSize)
	if budget <= 0 {
		budget = DefaultBufferBudget
	}
	b := &Buffers{unit: partSize, units: max(2, budget/partSize)}
	b.sem = semaphore.NewWeighted(b.units)
	b.free = make(chan []byte, b.units)
	return b
}

// normalPartSize is Options.PartSize's rule.
func normalPartSize(partSize int64) int64 {
	switch {
	case partSize == 0:
		return DefaultPartSize
	case partSize < MinPartSize:
		return MinPartSize
	case partSize > MaxPartSize:
		return MaxPartSize
	}
	return partSize
}

// Budget is the most bytes of buffers the Puts sharing b hold at once.
func (b *Buffers) Budget() int64 { return b.units * b.unit }

// PartSize is the size of one unit of the budget: the part size it was made for.
func (b *Buffers) PartSize() int64 { return b.unit }

// Peak is the most bytes of buffers the Puts sharing b held at once.
func (b *Buffers) Peak() int64 { return b.peak.Load() * b.unit }

// unitsOf is how many units a buffer of size bytes takes.
func (b *Buffers) unitsOf(size int64) int64 {
	return max(1, (size+b.unit-1)/b.unit)
}

// partBuf is a buffer taken from a Buffers budget: units of it.
type partBuf struct {
	b     []byte
	units int64
}

// get returns a buffer of size bytes once the budget has room for it.
func (b *Buffers) get(ctx context.Context, size int64) (*partBuf, error) {
	units := b.unitsOf(size)
	if units > b.units {
		return nil, fmt.Errorf("a buffer of %d bytes is more than the whole upload buffer budget (%d bytes)", size, b.Budget())
	}
	if err := b.sem.Acquire(ctx, units); err != nil {
		return nil, context.Cause(ctx)
	}
	n := b.inUse.Add(units)
	for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
	}
	if size <= b.unit {
		select {
		case buf := <-b.free:
			return &partBuf{b: buf[:size], units: 1}, nil
		default:
			return &partBuf{b: make([]byte, b.unit)[:size], units: 1}, nil
		}
	}
	return &partBuf{b: make([]byte, size), units: units}, nil
}

// put releases a buffer's share of the budget; a buffer of one unit goes back to the free list.
func (b *Buffers) put(pb *partBuf) {
	if pb == nil {
		return
	}
	if int64(cap(pb.b)) == b.unit {
		select {
		case b.free <- pb.b[:b.unit]:
		default:
		}
	}
	pb.b = nil
	b.inUse.Add(-pb.units)
	b.sem.Release(pb.units)
}
