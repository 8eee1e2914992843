//go:build unix

package s3store_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
)

// BenchmarkPutCPU writes 256 MiB objects into MinIO in each upload checksum mode and reports the
// client's CPU time (user + system, from getrusage: this process only, not MinIO) per GB
// uploaded. Run with -benchtime=4x for 1 GiB per mode.
func BenchmarkPutCPU(b *testing.B) {
	const size = 256 << 20
	srv := testserver.Shared(b, testserver.KindMinIO)
	srv.IsolateAWSEnv(b)
	block := randBytes(8, 1<<20+13)
	h := sha256.New()
	if _, err := io.Copy(h, &repeatReader{block: block, n: size}); err != nil {
		b.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	for _, mode := range s3store.Checksums {
		b.Run(string(mode), func(b *testing.B) {
			opts := s3store.Options{Endpoint: srv.Endpoint, Region: srv.Region, Checksum: mode}
			client, err := s3store.NewClient(b.Context(), opts)
			if err != nil {
				b.Fatal(err)
			}
			s := s3store.New(client, srv.NewBucket(b, "bench"), "", opts)
			b.SetBytes(size)
			var total time.Duration
			n := 0
			for b.Loop() {
				before := cpuTime(b)
				if _, err := s.Put(b.Context(), "big/object", &repeatReader{block: block, n: size}, store.PutOptions{Size: size, SHA256: want}); err != nil {
					b.Fatal(err)
				}
				total += cpuTime(b) - before
				n++
			}
			b.ReportMetric(total.Seconds()/(float64(n)*size/1e9), "cpu-s/GB")
		})
	}
}

// cpuTime is the CPU time this process has used (user + system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
