package main

// TestLargeObjectMemoryBounded reads the child's rusage as Linux reports it (ru_maxrss in KiB).

import (
	"bytes"
	"net/http/httptest"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/testserver"
)

// TestLargeObjectMemoryBounded uploads a 1 GiB object generated on the fly into MinIO and
// checks the process's peak RSS stays within the part buffers plus a fixed overhead, far below
// the object's size. The figure is logged.
func TestLargeObjectMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 1 GiB")
	}
	srv := testserver.MinIO(t)
	bucket := srv.NewBucket(t, "large")
	s, keyring := oneBigFile(t, 1<<30+12345)
	up := httptest.NewServer(s.Handler())
	defer up.Close()
	bin := buildBinary(t)

	cmd := exec.Command(bin, "--keyring", keyring, up.URL+"/", "s3://"+bucket+"/mirror", "--json")
	cmd.Env = srv.AWSEnv(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssmirror: %v\n%s", err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	peakMB := float64(ru.Maxrss) / 1024
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	t.Logf("1 GiB object into MinIO: wall %s, client CPU %s, peak RSS %.0f MB (defaults: 8 MiB parts, 32 MiB store-wide part budget, ranged downloads 3 files × 6 × 2 MiB)", time.Since(began).Round(time.Millisecond), cpu.Round(time.Millisecond), peakMB)
	if peakMB > 200 {
		t.Errorf("peak RSS %.0f MB for a 1 GiB object; the part budget bounds it near 100 MB", peakMB)
	}
	info, err := srv.MinioClient(t).StatObject(t.Context(), bucket, "mirror/"+squashfsPath(s), minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != s.Content[squashfsPath(s)] || info.UserMetadata["Sha256"] != s.SHA256(squashfsPath(s)) {
		t.Errorf("object %d bytes sha256 %q; want %d and %s", info.Size, info.UserMetadata["Sha256"], s.Content[squashfsPath(s)], s.SHA256(squashfsPath(s)))
	}
}
