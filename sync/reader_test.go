package sync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// readerStats counts what a reader loop saw.
type readerStats struct {
	iterations, fetches atomic.Int64 // iterations: passes, whole or cut short
	dangling, sigFails  atomic.Int64
	maxIteration        atomic.Int64 // nanoseconds
	mu                  gosync.Mutex
	problems            []string
}

func (r *readerStats) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// readerHold is how long the reader holds a products file before checking what it lists: long
// enough for a run to publish and collect meanwhile.
const readerHold = 200 * time.Millisecond

// readerClock is the clock the syncs and the reader share: the real one plus an offset the
// test moves forward to pass the grace period. It moves only between reader passes (advance
// waits for the pass under way to end), so no pass can outlast the grace however slow the
// machine is, and a dangling reference is always a fault.
type readerClock struct {
	pass   gosync.Mutex // held by the reader for each pass, by advance while it moves the clock
	mu     gosync.Mutex
	offset time.Duration
}

func (c *readerClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *readerClock) advance(d time.Duration) {
	c.pass.Lock()
	defer c.pass.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// readLoop reads the mirror the way a client does, over and over until stop is closed: the
// signed index, every signed products file it names, and every object those list.
func readLoop(dst store.Target, kr *sign.Keyring, clock *readerClock, stats *readerStats, stop <-chan struct{}) {
	ctx := context.Background()
	read := func(key string) ([]byte, error) {
		stats.fetches.Add(1)
		return store.ReadAll(ctx, dst, key, 0)
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		clock.pass.Lock()
		began := clock.Now()
		readPass(ctx, dst, kr, stats, read)
		if d := int64(clock.Now().Sub(began)); d > stats.maxIteration.Load() {
			stats.maxIteration.Store(d)
		}
		stats.iterations.Add(1)
		clock.pass.Unlock()
	}
}

// readPass is one pass of readLoop; it returns early when the index cannot be read.
func readPass(ctx context.Context, dst store.Target, kr *sign.Keyring, stats *readerStats, read func(string) ([]byte, error)) {
	data, err := read("streams/v1/index.sjson")
	if err != nil {
		stats.dangling.Add(1)
		stats.problem("index: %v", err)
		return
	}
	body, err := sign.VerifyClearsigned("streams/v1/index.sjson", data, kr)
	if err != nil {
		stats.sigFails.Add(1)
		stats.problem("%v", err)
		return
	}
	ix, err := streams.ParseIndex(body)
	if err != nil {
		stats.problem("index: %v", err)
		return
	}
	for _, e := range ix.Index {
		data, err := read(e.Path)
		if err != nil {
			stats.dangling.Add(1)
			stats.problem("%s: %v", e.Path, err)
			continue
		}
		body, err := sign.VerifyClearsigned(e.Path, data, kr)
		if err != nil {
			stats.sigFails.Add(1)
			stats.problem("%v", err)
			continue
		}
		doc, err := streams.ParseProducts(body)
		if err != nil {
			stats.problem("%s: %v", e.Path, err)
			continue
		}
		items, err := doc.Items()
		if err != nil {
			stats.problem("%s: %v", e.Path, err)
			continue
		}
		// A client holds the metadata while it downloads; the grace period is what keeps
		// the objects it lists alive meanwhile.
		time.Sleep(readerHold)
		for _, it := range items {
			if it.Path == "" {
				continue
			}
			stats.fetches.Add(1)
			info, err := dst.Stat(ctx, it.Path)
			switch {
			case errors.Is(err, store.ErrNotExist):
				stats.dangling.Add(1)
				stats.problem("dangling: %s listed by %s", it.Path, e.Path)
			case err != nil:
				stats.problem("stat %s: %v", it.Path, err)
			case info.Size != it.Size:
				stats.dangling.Add(1)
				stats.problem("%s: %d bytes, listed %d", it.Path, info.Size, it.Size)
			}
		}
	}
}

// TestReaderDuringSyncs runs four curated syncs against an upstream that changes between them
// (a new version, a product removed, a narrower filter with --prune, then garbage collection
// after the grace period) while a reader keeps following the published catalogue. It must never
// meet a dangling reference or a signature that does not verify.
func TestReaderDuringSyncs(t *testing.T) {
	targettest.Run(t, []targettest.Kind{targettest.Directory, targettest.MinIO}, targettest.Options{Parallel: true}, func(t *testing.T, tg *targettest.Target) {
		dst := tg.Store
		operator := loadSigner(t, "other-signing-key.asc")
		kr := publicKeyring(t, operator)
		// The grace is an hour of the shared clock, which the test moves past it before the
		// last run (with no reader pass under way); the reader's passes take far less.
		const grace = time.Hour
		clock := &readerClock{}
		cfg := func(versions []string, kernels ...string) streamtest.Config {
			c := smallConfig(versions...)
			c.Kernels = kernels
			c.SquashfsSize = 256 << 10
			return c
		}
		steps := []struct {
			what    string
			cfg     streamtest.Config
			filters []string
			prune   bool
			advance time.Duration // the clock moves this far before the run
		}{
			{"first", cfg([]string{"20250701"}, "ga", "hwe"), []string{"arch=amd64"}, false, 0},
			{"new version", cfg([]string{"20250701", "20250718"}, "ga", "hwe"), []string{"arch=amd64"}, false, 0},
			{"hwe products removed upstream", cfg([]string{"20250701", "20250718"}, "ga"), []string{"arch=amd64"}, false, 0},
			{"filter narrowed, pruned, old files collected", cfg([]string{"20250701", "20250718"}, "ga"), []string{"arch=amd64", "release=noble"}, true, grace + time.Second},
		}
		stats := &readerStats{}
		stop := make(chan struct{})
		var wg gosync.WaitGroup
		deleted := 0
		for i, step := range steps {
			clock.advance(step.advance)
			up := newUpstream(t, step.cfg, nil)
			rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, step.filters...), Max: 1, Prune: step.prune}, Publishing: sync.Publishing{Signer: operator, GCGrace: grace}, Hooks: sync.Hooks{Now: clock.Now}})
			deleted += len(rep.Deleted)
			t.Logf("%s: %d added, %d removed, %d deleted", step.what, len(rep.Plan.Added), len(rep.Plan.Removed), len(rep.Deleted))
			if i == 0 { // something is published: start reading
				wg.Add(1)
				go func() { defer wg.Done(); readLoop(dst, kr, clock, stats, stop) }()
				waitPasses(stats, 1)
			}
		}
		// Two more passes: at least one wholly after the last run.
		waitPasses(stats, stats.iterations.Load()+2)
		close(stop)
		wg.Wait()
		maxIt := time.Duration(stats.maxIteration.Load())
		t.Logf("reader: %d passes, %d fetches, %d dangling references, %d signature failures, longest pass %s",
			stats.iterations.Load(), stats.fetches.Load(), stats.dangling.Load(), stats.sigFails.Load(), maxIt.Round(time.Millisecond))
		if deleted == 0 {
			t.Error("no garbage was collected: the test did not exercise deletion")
		}
		if maxIt > grace {
			t.Errorf("a reader pass took %s, longer than the grace period (%s): the test no longer tells a fault from a slow reader", maxIt, grace)
		}
		if stats.dangling.Load() != 0 || stats.sigFails.Load() != 0 {
			t.Errorf("the reader saw %d dangling references and %d signature failures: %v", stats.dangling.Load(), stats.sigFails.Load(), stats.problems)
		}
		if stats.iterations.Load() < 3 {
			t.Errorf("the reader made only %d passes", stats.iterations.Load())
		}
	})
}

// waitPasses waits until the reader has made at least n passes.
func waitPasses(stats *readerStats, n int64) {
	for stats.iterations.Load() < n {
		time.Sleep(10 * time.Millisecond)
	}
}

func publicKeyring(t *testing.T, s *sign.Signer) *sign.Keyring {
	t.Helper()
	var buf bytes.Buffer
	if err := s.WritePublicKeyring(&buf); err != nil {
		t.Fatal(err)
	}
	kr, err := sign.ReadKeyring(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
