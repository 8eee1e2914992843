// Package testserver starts real S3 servers (MinIO, versitygw, SeaweedFS) on 127.0.0.1 for tests.
//
// Binaries are looked up in $SSMIRROR_TEST_BIN, then in ${XDG_CACHE_HOME:-$HOME/.cache}/ssmirror/bin
// (where scripts/install-test-servers puts them), then in $PATH. When a binary is missing the
// test is skipped, except when the environment has CI=true: then it fails, telling the reader to
// run scripts/install-test-servers.
//
// Starting MinIO takes seconds, so a test package normally shares one server per kind across all
// its tests:
//
//	func TestMain(m *testing.M) { os.Exit(testserver.RunMain(m)) }
//
//	func TestSomething(t *testing.T) {
//		srv := testserver.Shared(t, testserver.KindMinIO)
//		bucket := srv.NewBucket(t, "something")
//		...
//	}
//
// MinIO, VersityGW and SeaweedFS start a dedicated server that is stopped when the test ends.
package testserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Kind names an S3 server implementation.
type Kind string

// The server kinds this package can start.
const (
	KindMinIO     Kind = "minio"
	KindVersityGW Kind = "versitygw"
	// KindSeaweedFS is SeaweedFS's all-in-one server (master, volume server, filer and S3
	// gateway in one process: weed server -s3), installed as "seaweedfs".
	KindSeaweedFS Kind = "seaweedfs"
)

// Kinds lists every kind, for suites that run against each.
var Kinds = []Kind{KindMinIO, KindVersityGW, KindSeaweedFS}

// Server is a running S3 server reachable over plain HTTP on 127.0.0.1.
type Server struct {
	Kind      Kind
	Endpoint  string // "http://127.0.0.1:PORT"
	AccessKey string
	SecretKey string
	Region    string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	dataDir string        // removed by stop when owned (shared servers)
	ownDir  bool
	log     *lockedBuffer
}

// readyTimeout bounds how long a server may take to answer its first request.
const readyTimeout = 90 * time.Second

// MinIO starts a MinIO server for this test only; it is killed when the test ends.
func MinIO(t testing.TB) *Server {
	t.Helper()
	return startForTest(t, KindMinIO)
}

// VersityGW starts a versitygw server (posix backend) for this test only; it is killed when the
// test ends.
func VersityGW(t testing.TB) *Server {
	t.Helper()
	return startForTest(t, KindVersityGW)
}

// SeaweedFS starts a SeaweedFS server (weed server -s3) for this test only; it is killed when the
// test ends.
func SeaweedFS(t testing.TB) *Server {
	t.Helper()
	return startForTest(t, KindSeaweedFS)
}

func startForTest(t testing.TB, kind Kind) *Server {
	t.Helper()
	bin := requireBinary(t, kind)
	s, err := start(kind, bin, t.TempDir(), false)
	if err != nil {
		t.Fatalf("starting %s: %v", kind, err)
	}
	t.Cleanup(s.stop)
	return s
}

var (
	sharedMu      sync.Mutex
	sharedServers = map[Kind]*Server{}
	sharedErrs    = map[Kind]error{}
)

// Shared returns the server of this kind shared by every test of the package, starting it on
// first use. Stop it at the end of the package's tests with RunMain (or StopShared). If the test
// binary dies without stopping it, the server is killed with it (Linux: parent-death signal).
func Shared(t testing.TB, kind Kind) *Server {
	t.Helper()
	bin := requireBinary(t, kind)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if s := sharedServers[kind]; s != nil {
		return s
	}
	if err := sharedErrs[kind]; err != nil {
		t.Fatalf("starting shared %s (earlier attempt): %v", kind, err)
	}
	dir, err := os.MkdirTemp("", "ssmirror-"+string(kind)+"-")
	if err != nil {
		t.Fatalf("starting shared %s: %v", kind, err)
	}
	s, err := start(kind, bin, dir, true)
	if err != nil {
		os.RemoveAll(dir)
		sharedErrs[kind] = err
		t.Fatalf("starting shared %s: %v", kind, err)
	}
	sharedServers[kind] = s
	return s
}

// StopShared stops every shared server and removes its data.
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for kind, s := range sharedServers {
		s.stop()
		delete(sharedServers, kind)
	}
}

// RunMain runs the package's tests and then stops the shared servers:
//
//	func TestMain(m *testing.M) { os.Exit(testserver.RunMain(m)) }
func RunMain(m *testing.M) int {
	defer StopShared()
	return m.Run()
}

// BinDir is where scripts/install-test-servers installs the servers by default.
func BinDir() string {
	if d := os.Getenv("SSMIRROR_TEST_BIN"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "ssmirror", "bin")
}

// FindBinary returns the path of the server binary for kind, or an error saying where it looked.
func FindBinary(kind Kind) (string, error) {
	name := string(kind)
	if d := BinDir(); d != "" {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s binary not found in %s or $PATH", name, BinDir())
}

func requireBinary(t testing.TB, kind Kind) string {
	t.Helper()
	bin, err := FindBinary(kind)
	if err == nil {
		return bin
	}
	msg := fmt.Sprintf("%v; run scripts/install-test-servers (or set SSMIRROR_TEST_BIN)", err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// freePort asks the kernel for an unused loopback port. Another process may take it before the
// server binds it; start retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(kind Kind, bin, dataDir string, ownDir bool) (*Server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := startOnce(kind, bin, dataDir, ownDir)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errExitedEarly) {
			break
		}
	}
	return nil, lastErr
}

var errExitedEarly = errors.New("server exited before it was ready")

func startOnce(kind Kind, bin, dataDir string, ownDir bool) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Kind:      kind,
		Endpoint:  fmt.Sprintf("http://127.0.0.1:%d", port),
		AccessKey: "ak" + randomHex(8),
		SecretKey: "sk" + randomHex(16),
		Region:    "us-east-1",
		done:      make(chan struct{}),
		dataDir:   dataDir,
		ownDir:    ownDir,
		log:       &lockedBuffer{},
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var args, env []string
	switch kind {
	case KindMinIO:
		console, err := freePort()
		if err != nil {
			return nil, err
		}
		args = []string{"server", "--quiet", "--address", addr,
			"--console-address", fmt.Sprintf("127.0.0.1:%d", console), dataDir}
		env = []string{
			"MINIO_ROOT_USER=" + s.AccessKey,
			"MINIO_ROOT_PASSWORD=" + s.SecretKey,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
			"MINIO_REGION=" + s.Region,
		}
	case KindVersityGW:
		args = []string{"--port", addr, "--quiet", "posix", dataDir}
		env = []string{
			"ROOT_ACCESS_KEY=" + s.AccessKey,
			"ROOT_SECRET_KEY=" + s.SecretKey,
			"VGW_REGION=" + s.Region,
		}
	case KindSeaweedFS:
		if args, err = seaweedArgs(s, dataDir); err != nil {
			return nil, err
		}
		// Every bucket is a collection with volumes of its own, grown 7 at a time by default: a
		// test package's few hundred buckets would use up the volume server's slots, after
		// which every write fails with 500 InternalError. One at a time, and slots enough.
		env = []string{"WEED_MASTER_VOLUME_GROWTH_COPY_1=1"}
	default:
		return nil, fmt.Errorf("unknown server kind %q", kind)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	s.cmd = cmd
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(); err != nil {
		s.kill()
		return nil, fmt.Errorf("%s on %s: %w\n%s", kind, addr, err, s.log.tail(4096))
	}
	return s, nil
}

// cleanEnv is the test's environment without variables that could change how the servers
// behave (their own settings and the AWS client settings).
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "MINIO_"), strings.HasPrefix(name, "VGW_"),
			strings.HasPrefix(name, "ROOT_"), strings.HasPrefix(name, "AWS_"),
			strings.HasPrefix(name, "WEED_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// waitReady polls the server with a signed ListBuckets until it answers.
func (s *Server) waitReady() error {
	mc, err := s.newMinioClient()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("%w: %v", errExitedEarly, s.cmd.ProcessState)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, lastErr = mc.ListBuckets(ctx)
		cancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("%w: %v", errExitedEarly, s.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %v: %w", readyTimeout, lastErr)
}

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

// Kill stops a test's own server (MinIO, VersityGW) at once, as a crash or a pulled cable would:
// a test of what a client does when its server goes away. It is not restarted.
func (s *Server) Kill() { s.kill() }

func (s *Server) stop() {
	s.kill()
	if s.ownDir && s.dataDir != "" {
		os.RemoveAll(s.dataDir)
	}
}

// Host is the endpoint's host:port.
func (s *Server) Host() string { return strings.TrimPrefix(s.Endpoint, "http://") }

// Log returns the end of what the server printed, for failure messages.
func (s *Server) Log() string { return s.log.tail(8192) }

func (s *Server) newMinioClient() (*minio.Client, error) {
	return minio.New(s.Host(), &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: false,
		Region: s.Region,
	})
}

// MinioClient returns a minio-go client for the server: an S3 client independent of the code
// under test, for checking what landed in a bucket.
func (s *Server) MinioClient(t testing.TB) *minio.Client {
	t.Helper()
	mc, err := s.newMinioClient()
	if err != nil {
		t.Fatalf("minio client for %s: %v", s.Endpoint, err)
	}
	return mc
}

var bucketSeq atomic.Int64

var notBucketChars = regexp.MustCompile(`[^a-z0-9-]+`)

// NewBucket creates a new empty bucket whose name starts with name (lowercased, sanitised) and
// returns the bucket's full name, unique on this server.
func (s *Server) NewBucket(t testing.TB, name string) string {
	t.Helper()
	base := notBucketChars.ReplaceAllString(strings.ToLower(name), "-")
	base = strings.Trim(base, "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	if base == "" {
		base = "test"
	}
	bucket := fmt.Sprintf("%s-%d-%s", base, bucketSeq.Add(1), randomHex(3))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.MinioClient(t).MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("creating bucket %s on %s %s: %v", bucket, s.Kind, s.Endpoint, err)
	}
	return bucket
}

// lockedBuffer collects a server's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep memory bounded: servers can be chatty over a long test run.
	if b.buf.Len() > 1<<20 {
		rest := append([]byte(nil), b.buf.Bytes()[b.buf.Len()-64<<10:]...)
		b.buf.Reset()
		b.buf.Write(rest)
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	data := b.buf.Bytes()
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}
