package sync_test

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/memstore"
	"github.com/ssmirror/ssmirror/sync"
)

// genTinyItems writes an unsigned stream whose one products file lists n tiny items (about 40
// bytes each, like the 59 MB, 1.5M-item file that took 4 GB): 100 items per version, 10
// versions per product.
func genTinyItems(n int) (index, products []byte) {
	var b strings.Builder
	b.WriteString(`{"content_id":"c","format":"products:1.0","products":{`)
	for i := 0; i < n; {
		p := i / 1000
		if p > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"p%d":{"versions":{`, p)
		for v := 0; v < 10 && i < n; v++ {
			if v > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"%d":{"items":{`, v)
			for j := 0; j < 100 && i < n; j, i = j+1, i+1 {
				if j > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `"i%d":{"path":"x/%d","size":%d}`, j, i, i%1000+1)
			}
			b.WriteString(`}}`)
		}
		b.WriteString(`}}`)
	}
	b.WriteString(`}}`)
	return []byte(`{"format":"index:1.0","index":{"c":{"format":"products:1.0","path":"streams/v1/c.json","products":[]}}}`), []byte(b.String())
}

// peakHeap samples the heap in use until stop is called, and returns the highest value seen.
func peakHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	done := make(chan struct{})
	var wg gosync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak }
}

// BenchmarkLargeCatalogue measures the heap a dry run (read the catalogue, plan) takes over a
// generated products file of tiny items: the peak sampled while it runs, and what stays
// reachable at its end (the report). SSMIRROR_BENCH_ITEMS sets the count (default 300000).
func BenchmarkLargeCatalogue(b *testing.B) {
	n := 300000
	if v := os.Getenv("SSMIRROR_BENCH_ITEMS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	ctx := b.Context()
	index, products := genTinyItems(n)
	src := memstore.New()
	for k, v := range map[string][]byte{"streams/v1/index.json": index, "streams/v1/c.json": products} {
		if _, err := store.PutBytes(ctx, src, k, v, store.PutOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(products))/1e6, "file-MB")
	products = nil
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := peakHeap()
		rep, err := sync.Run(ctx, src, memstore.New(), sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}, Publishing: sync.Publishing{DryRun: true}})
		peak := stop()
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(rep)
		b.ReportMetric(float64(peak-min(peak, before.HeapAlloc))/1e6, "peak-heap-MB")
		b.ReportMetric(float64(after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc))/1e6, "retained-MB")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/1e6, "alloc-MB")
	}
}
