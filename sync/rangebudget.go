package sync

import (
	"context"
	"io"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/ranged"
)

// Defaults for ranged downloads (Options.RangeStreams, RangeChunk, RangeFiles). Measured with
// scripts/bench over scripts/linkemu (20 MB/s per connection, 30 ms), into MinIO. One ~1 GB
// file: 5 × 4 MiB took 12.8 s at 81 MB peak RSS, 4 × 4 MiB 15.8 s at 76 MB, 4 × 8 MiB 15.0 s
// at 111 MB, 6 × 2 MiB 12.1 s at 61 MB; one connection (curl) 52.7 s. The 1.5 GB stream
// (4 files at once, 8 MiB parts, 24 MiB of part buffers): one file ranged at 5 × 4 MiB 16.7 s,
// two at 6 × 2 MiB 11.7-13.3 s and 91 MB, three at 6 × 2 MiB 9.7 s but 104 MB, three at
// 5 × 2 MiB 10.1-10.2 s and 100 MB (32 MiB of part buffers); rclone 21.1 s.
const (
	DefaultRangeStreams = 5
	DefaultRangeChunk   = 2 << 20
	DefaultRangeFiles   = 3
)

// rangedMinChunks: a file shorter than this many chunks is fetched with one request; below it,
// the request per chunk costs more than the extra connections bring.
const rangedMinChunks = 4

// rangeBudget is the chunk buffers one run may hold for ranged downloads, shared by every file
// of the run and reused from file to file. A file takes buffers without waiting and falls back to
// one request when too few are free, so files never wait on one another for memory.
type rangeBudget struct {
	slots chan []byte // one entry per buffer the run may hold; nil until first allocated
}

func newRangeBudget(n int) *rangeBudget {
	b := &rangeBudget{slots: make(chan []byte, n)}
	for range n {
		b.slots <- nil
	}
	return b
}

// take returns up to n buffers (some may be nil: not allocated yet) without waiting.
func (b *rangeBudget) take(n int) [][]byte {
	var bufs [][]byte
	for len(bufs) < n {
		select {
		case buf := <-b.slots:
			bufs = append(bufs, buf)
		default:
			return bufs
		}
	}
	return bufs
}

// give returns buffers taken with take.
func (b *rangeBudget) give(bufs [][]byte) {
	for _, buf := range bufs {
		b.slots <- buf
	}
}

// rangeParams returns the ranged-download settings with defaults applied: streams per file,
// the chunk size, and how many chunk buffers a run may hold (0: ranged downloads are off).
func (o *Options) rangeParams() (streams int, chunk int64, slots int) {
	streams, chunk = o.RangeStreams, o.RangeChunk
	if streams <= 0 {
		streams = DefaultRangeStreams
	}
	if chunk <= 0 {
		chunk = DefaultRangeChunk
	}
	if streams <= 1 {
		return streams, chunk, 0
	}
	files := o.RangeFiles
	if files <= 0 {
		files = DefaultRangeFiles
	}
	return streams, chunk, files * (streams + 1)
}

// openRanged returns a reader fetching f from src in parallel ranges, or nil when that does not
// apply: the source cannot serve bounded ranges (only HTTP can; reading a directory in pieces
// gains nothing), ranged downloads are off, the file is small, or the run's buffers are taken.
func (r *run) openRanged(ctx context.Context, src store.Source, f Fetch) io.ReadCloser {
	ro, ok := store.As[store.RangeOpener](src)
	if !ok {
		return nil
	}
	streams, chunk, _ := r.opts.rangeParams()
	budget := r.ranged()
	if budget == nil || f.Size < rangedMinChunks*chunk {
		return nil
	}
	bufs := budget.take(streams + 1)
	if len(bufs) < 3 {
		// Two streams and the chunk being consumed, or it is no better than one request.
		budget.give(bufs)
		return nil
	}
	return ranged.NewReader(ctx, ro, f.Path, f.Size, chunk, bufs, ranged.Options{
		Policy:  sourcePolicy(nil),
		Release: budget.give,
	})
}
