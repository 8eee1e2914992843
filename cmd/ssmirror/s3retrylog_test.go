package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/internal/faultproxy"
	"github.com/ssmirror/ssmirror/internal/testserver"
)

// TestVerboseLogsS3Retries: with -v, each request the AWS SDK retries inside the S3 client is
// logged (message "retrying", naming the operation, bucket and key and why), as text and as
// JSON; without -v nothing is. The target is a real MinIO behind a proxy answering SlowDown to
// the first PUTs of mirror content, or corrupting their bodies (resent by s3store itself).
func TestVerboseLogsS3Retries(t *testing.T) {
	srv := testserver.MinIO(t)
	srv.IsolateAWSEnv(t)
	fx := fixtureDir(t)
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	const slowdowns = 2
	var runFault func(t *testing.T, kind faultproxy.Kind, args ...string) (stderr, bucket string)

	run := func(t *testing.T, args ...string) (stderr, bucket string) {
		return runFault(t, faultproxy.SlowDown, args...)
	}
	runFault = func(t *testing.T, kind faultproxy.Kind, args ...string) (stderr, bucket string) {
		t.Helper()
		bucket = srv.NewBucket(t, "retrylog")
		proxy, err := faultproxy.New(srv.Endpoint, faultproxy.Options{Seed: 1, Faults: []faultproxy.Fault{{
			Kind: kind, Rate: 1, Methods: []string{http.MethodPut}, Max: slowdowns,
			// Mirror content, not the lock.
			Filter: func(r *http.Request) bool { return !strings.Contains(r.URL.Path, "/.ssmirror/") },
		}}})
		if err != nil {
			t.Fatal(err)
		}
		front := httptest.NewServer(proxy)
		t.Cleanup(front.Close)
		args = append(args, keyring, "--s3-endpoint", front.URL, "--region", srv.Region,
			filepath.Join(fx, "stream"), "s3://"+bucket+"/mirror", "arch=amd64", "--max=1")
		_, stderr, code := runMain(t, args...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if n := proxy.Stats().Faults[kind]; n != slowdowns {
			t.Fatalf("the proxy injected %s %d times, want %d", kind, n, slowdowns)
		}
		return stderr, bucket
	}

	t.Run("text", func(t *testing.T) {
		stderr, bucket := run(t, "-v")
		var lines []string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, "msg=retrying") {
				lines = append(lines, l)
			}
		}
		if len(lines) != slowdowns {
			t.Fatalf("%d retry lines, want %d:\n%s", len(lines), slowdowns, stderr)
		}
		for _, l := range lines {
			for _, want := range []string{"op=PutObject", "bucket=" + bucket, "key=mirror/", "retry=1", `after="503 SlowDown: Please reduce your request rate."`} {
				if !strings.Contains(l, want) {
					t.Errorf("retry line lacks %s: %s", want, l)
				}
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		stderr, bucket := run(t, "-v", "--log-format", "json")
		n := 0
		for _, o := range checkJSONLines(t, "stderr", stderr) {
			if o["msg"] != "retrying" {
				continue
			}
			n++
			key, _ := o["key"].(string)
			if o["level"] != "INFO" || o["op"] != "PutObject" || o["bucket"] != bucket || !strings.HasPrefix(key, "mirror/") ||
				o["retry"] != float64(1) || !strings.Contains(o["after"].(string), "SlowDown") {
				t.Errorf("retry line: %v", o)
			}
		}
		if n != slowdowns {
			t.Errorf("%d retry lines, want %d:\n%s", n, slowdowns, stderr)
		}
	})
	// A body changed on the way is refused by the server and sent again by s3store itself (not
	// the SDK's retryer): logged the same way.
	t.Run("transit", func(t *testing.T) {
		stderr, bucket := runFault(t, faultproxy.FlipRequest, "-v", "--log-format", "json")
		n := 0
		for _, o := range checkJSONLines(t, "stderr", stderr) {
			if o["msg"] != "retrying" {
				continue
			}
			n++
			key, _ := o["key"].(string)
			if o["op"] != "PutObject" || o["bucket"] != bucket || !strings.HasPrefix(key, "mirror/") || o["retry"] != float64(1) || o["after"] == "" {
				t.Errorf("retry line: %v", o)
			}
		}
		if n != slowdowns {
			t.Errorf("%d retry lines, want %d:\n%s", n, slowdowns, stderr)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		stderr, _ := run(t)
		if strings.Contains(stderr, "retrying") {
			t.Errorf("retries logged without -v:\n%s", stderr)
		}
	})
}
