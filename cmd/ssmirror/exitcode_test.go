package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/sync"
)

// runBinary runs the built ssmirror as its own process and returns its exit status and output.
func runBinary(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running ssmirror: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestExitCodes runs the real binary and checks each exit status scripts rely on: 0 done, 1 the
// work failed, 2 the command line or configuration is wrong, 75 the target is locked by another
// run. (Signals: TestExitCodeSignals.)
func TestExitCodes(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	stream := filepath.Join(fx, "stream")
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")

	// A Pushgateway that fails every push.
	pgw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "pushgateway down", http.StatusInternalServerError)
	}))
	defer pgw.Close()

	tests := []struct {
		name string
		args func(dir string) []string
		code int
		// stderr must match; nothing may be written to dir/m when code is 2 or 75.
		stderr string
	}{
		{"done", func(d string) []string { return []string{keyring, stream, d + "/m", "os=pxelinux"} }, 0, ""},
		{"metrics push fails after a good publish: a warning", func(d string) []string {
			return []string{keyring, "--metrics-push", pgw.URL, "--metrics-textfile", d + "/x.prom", stream, d + "/m", "os=pxelinux"}
		}, 0, "WARN.*mirrored, but the metrics export failed.*metrics push"},
		{"work failed: no catalogue in the source", func(d string) []string {
			os.Mkdir(d+"/empty", 0o755)
			return []string{keyring, d + "/empty", d + "/m"}
		}, 1, "index.sjson"},
		{"work failed: wrong keyring", func(d string) []string {
			return []string{"--keyring=" + filepath.Join(fx, "keys", "other-keyring.gpg"), stream, d + "/m"}
		}, 1, "signed by a key not in the keyring"},
		{"missing keyring file", func(d string) []string { return []string{"--keyring=" + d + "/nope.gpg", stream, d + "/m"} }, 2, "nope.gpg"},
		{"unknown command", func(d string) []string { return []string{"verfy", d + "/m"} }, 2, `unknown command "verfy" \(did you mean verify\?\)`},
		{"target looks like a filter", func(d string) []string { return []string{keyring, stream, "arch=amd64"} }, 2, `TARGET "arch=amd64" looks like a filter`},
		{"s3 with one slash", func(d string) []string { return []string{keyring, stream, "s3:/bucket/prefix"} }, 2, `did you mean s3://bucket/prefix`},
		{"unknown flag", func(d string) []string { return []string{"--bogus", stream, d + "/m"} }, 2, "unknown flag: --bogus"},
		{"unwritable metrics path, caught before any transfer", func(d string) []string {
			return []string{keyring, "--metrics-textfile", "/proc/ssmirror-test.prom", stream, d + "/m"}
		}, 2, "not writable"},
		{"metrics path is a directory", func(d string) []string {
			return []string{keyring, "--metrics-textfile", d, stream, d + "/m"}
		}, 2, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			code, stdout, stderr := runBinary(t, bin, nil, tt.args(dir)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if tt.stderr != "" && !regexpMatch(t, tt.stderr, stderr) {
				t.Errorf("stderr %q does not match %q", stderr, tt.stderr)
			}
			if code == 2 {
				if _, err := os.Stat(dir + "/m/streams"); err == nil {
					t.Errorf("a usage error published metadata")
				}
			}
		})
	}

	t.Run("warning recorded in the textfile", func(t *testing.T) {
		dir := t.TempDir()
		code, _, stderr := runBinary(t, bin, nil, keyring, "--metrics-push", pgw.URL, "--metrics-textfile", dir+"/x.prom", stream, dir+"/m", "os=pxelinux")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		data, err := os.ReadFile(dir + "/x.prom")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"ssmirror_last_run_error{target=", "ssmirror_last_run_metrics_push_error{", "ssmirror_last_run_warnings{"} {
			if !strings.Contains(string(data), want) {
				t.Errorf("textfile lacks %s:\n%s", want, data)
			}
		}
		if !regexpMatch(t, `(?m)^ssmirror_last_run_metrics_push_error\{.*\} 1$`, string(data)) ||
			!regexpMatch(t, `(?m)^ssmirror_last_run_error\{.*\} 0$`, string(data)) {
			t.Errorf("the textfile should record a good run with a failed push:\n%s", data)
		}
	})

	t.Run("locked", func(t *testing.T) {
		dir := t.TempDir()
		dst, err := dirstore.New(dir, dirstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		lock, _, err := sync.AcquireLock(t.Context(), dst, sync.LockOptions{TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Release()
		code, _, stderr := runBinary(t, bin, nil, keyring, stream, dir, "os=pxelinux")
		if code != 75 || !strings.Contains(stderr, "locked by another ssmirror run") {
			t.Fatalf("exit %d, want 75 (EX_TEMPFAIL); stderr: %s", code, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "streams")); err == nil {
			t.Error("a locked-out run published metadata")
		}
	})
}

// TestExitCodeSignals interrupts a run with SIGINT and SIGTERM while it waits on its upstream:
// the process exits 130 and 143, saying it was interrupted, and publishes nothing.
func TestExitCodeSignals(t *testing.T) {
	bin := buildBinary(t)
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			asked := make(chan struct{}, 1)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case asked <- struct{}{}:
				default:
				}
				<-r.Context().Done() // hang until the client goes away
			}))
			defer up.Close()
			dir := t.TempDir()
			cmd := exec.Command(bin, "--no-verify", up.URL+"/", dir+"/m")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-asked:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("the run never asked its upstream: %s", stderr.String())
			}
			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if got := cmd.ProcessState.ExitCode(); got != tt.code {
				t.Fatalf("exit %d after %s, want %d; stderr: %s", got, tt.sig, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "interrupted by") {
				t.Errorf("stderr does not say the run was interrupted: %s", stderr.String())
			}
			if _, err := os.Stat(dir + "/m/streams"); err == nil {
				t.Error("an interrupted run published metadata")
			}
		})
	}
}

func regexpMatch(t *testing.T, pattern, s string) bool {
	t.Helper()
	ok, err := regexp.MatchString(pattern, s)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestCDNFailureIsWarning: a CloudFront invalidation refused after a good publish (here by a
// fake CloudFront endpoint answering AccessDenied) is a warning: exit 0, the mirror published,
// and the textfile metrics record it.
func TestCDNFailureIsWarning(t *testing.T) {
	var calls atomic.Int32
	cf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0"?><ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: cloudfront:CreateInvalidation</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
	}))
	defer cf.Close()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_CLOUDFRONT": cf.URL, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-a-secret",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "", "AWS_ENDPOINT_URL": "",
	} {
		t.Setenv(k, v)
	}
	fx := fixtureDir(t)
	prom := filepath.Join(dir, "x.prom")
	_, stderr, code := runMain(t, "--keyring="+filepath.Join(fx, "keys", "test-keyring.gpg"), "--cloudfront-distribution", "E2EXAMPLE",
		"--metrics-textfile", prom, filepath.Join(fx, "stream"), filepath.Join(dir, "m"), "os=pxelinux")
	if calls.Load() == 0 {
		t.Fatalf("CloudFront was never asked: exit %d, %s", code, stderr)
	}
	if code != 0 || !strings.Contains(stderr, "mirrored, but the CDN invalidation failed") || !strings.Contains(stderr, "AccessDenied") {
		t.Fatalf("exit %d, stderr %q; want exit 0 and a warning", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "m", "streams", "v1", "index.sjson")); err != nil {
		t.Errorf("not published: %v", err)
	}
	data, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	if !regexpMatch(t, `(?m)^ssmirror_last_run_cdn_invalidation_error\{.*\} 1$`, string(data)) ||
		!regexpMatch(t, `(?m)^ssmirror_last_run_warnings\{.*\} 1$`, string(data)) ||
		!regexpMatch(t, `(?m)^ssmirror_last_run_error\{.*\} 0$`, string(data)) {
		t.Errorf("textfile does not record a good run with a failed invalidation:\n%s", data)
	}
}
