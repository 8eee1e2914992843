package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/sign"
)

// These tests run the real binary as a separate process against a real MinIO: what an operator
// runs, measured from outside (peak RSS from the kernel's rusage, signals delivered for real).

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ssmirror")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func testKeys(t *testing.T) (*sign.Signer, string) {
	return testkeys.Signer(t, testkeys.SigningKey), testkeys.Path(testkeys.Keyring)
}

// oneBigFile is a stream of one release/arch/version/kernel whose squashfs is size bytes.
func oneBigFile(t *testing.T, size int64) (*streamtest.Stream, string) {
	t.Helper()
	signer, keyring := testKeys(t)
	cfg := streamtest.Config{
		Releases: []string{"noble"}, Arches: []string{"amd64"}, Versions: []string{"20250718"},
		Kernels: []string{"ga"}, SquashfsSize: size, Seed: 7,
	}
	s, err := streamtest.Generate(cfg, signer)
	if err != nil {
		t.Fatal(err)
	}
	return s, keyring
}

func squashfsPath(s *streamtest.Stream) string {
	for _, it := range s.Items {
		if it.Name == "squashfs" {
			return it.Path
		}
	}
	return ""
}

// throttled serves h, slowing content bodies down and counting the bytes sent.
type throttled struct {
	h    http.Handler
	sent atomic.Int64
	off  atomic.Bool
}

func (th *throttled) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/streams/") || th.off.Load() {
		th.h.ServeHTTP(w, r)
		return
	}
	th.h.ServeHTTP(&slowWriter{ResponseWriter: w, th: th}, r)
}

type slowWriter struct {
	http.ResponseWriter
	th *throttled
}

// Write pauses 20 ms after every 256 KiB sent: about 12 MiB/s.
func (sw *slowWriter) Write(p []byte) (int, error) {
	const step = 256 << 10
	n, err := sw.ResponseWriter.Write(p)
	after := sw.th.sent.Add(int64(n))
	if after/step != (after-int64(n))/step {
		time.Sleep(20 * time.Millisecond)
	}
	return n, err
}

// TestSIGINTMidUpload interrupts a multipart upload with a real SIGINT: the process exits
// non-zero, no partial object and no incomplete upload is visible, nothing is published, and the
// next run completes.
func TestSIGINTMidUpload(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.NewBucket(t, "sigint")
	s, keyring := oneBigFile(t, 48<<20)
	th := &throttled{h: s.Handler()}
	up := httptest.NewServer(th)
	defer up.Close()
	bin := buildBinary(t)
	args := []string{"--keyring", keyring, "--part-size", "5242880", up.URL + "/", "s3://" + bucket + "/mirror"}

	cmd := exec.Command(bin, args...)
	cmd.Env = srv.AWSEnv(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for th.sent.Load() < 16<<20 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the upload never got going: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	err := cmd.Wait()
	t.Logf("exited %s after SIGINT", time.Since(signalled).Round(time.Millisecond))
	if err == nil {
		t.Fatal("an interrupted run exited 0")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d after SIGINT, want 130", code)
	}
	if !strings.Contains(stderr.String(), "interrupted") && !strings.Contains(stderr.String(), "context canceled") {
		t.Errorf("stderr does not say it was interrupted: %s", stderr.String())
	}
	t.Logf("interrupted after %d MiB: %s", th.sent.Load()>>20, strings.TrimSpace(stderr.String()))

	mc := srv.MinioClient(t)
	ctx := t.Context()
	for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "mirror/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if strings.HasPrefix(obj.Key, "mirror/streams/") || obj.Key == "mirror/"+squashfsPath(s) {
			t.Errorf("visible after the interrupt: %s", obj.Key)
		}
	}
	for u := range mc.ListIncompleteUploads(ctx, bucket, "", true) {
		t.Errorf("incomplete upload left: %s %v", u.Key, u.Err)
	}

	// The next run completes.
	th.off.Store(true)
	cmd = exec.Command(bin, args...)
	cmd.Env = srv.AWSEnv(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the run after the interrupt failed: %v\n%s", err, out)
	}
	info, err := mc.StatObject(ctx, bucket, "mirror/"+squashfsPath(s), minio.StatObjectOptions{})
	if err != nil || info.Size != 48<<20 {
		t.Fatalf("after the second run: %v, size %d", err, info.Size)
	}
	if _, err := mc.StatObject(ctx, bucket, "mirror/streams/v1/index.sjson", minio.StatObjectOptions{}); err != nil {
		t.Errorf("index not published by the completing run: %v", err)
	}
}
