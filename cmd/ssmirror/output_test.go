package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/sync"
)

// checkJSONLines fails unless every line of out is one JSON object; it returns them.
func checkJSONLines(t *testing.T, what, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" && out == "" {
			break
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("%s line %d is not a JSON object: %q", what, i+1, line)
			continue
		}
		objs = append(objs, m)
	}
	return objs
}

func hasMsg(objs []map[string]any, level, msg string) map[string]any {
	for _, o := range objs {
		if o["level"] == level && o["msg"] == msg {
			return o
		}
	}
	return nil
}

// TestLogFormatJSONEveryLine runs the real binary with --log-format json on a success (with -v
// and --progress), a failed run, early failures (usage, unreachable catalogue), a locked target
// and an interrupted run: every line on stdout and stderr parses as a JSON object, the final
// error included, and -v logs a start line.
func TestLogFormatJSONEveryLine(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	stream := filepath.Join(fx, "stream")
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	other := "--keyring=" + filepath.Join(fx, "keys", "other-keyring.gpg")
	env := []string{"SSMIRROR_NOT_A_SETTING=1"} // its warning must be JSON too

	t.Run("success", func(t *testing.T) {
		code, stdout, stderr := runBinary(t, bin, env, "--log-format", "json", "-v", "--progress", "--progress-interval", "1ms",
			keyring, stream, filepath.Join(t.TempDir(), "m"), "arch=amd64")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		errs := checkJSONLines(t, "stderr", stderr)
		out := checkJSONLines(t, "stdout", stdout)
		if len(out) != 1 || out[0]["ok"] != true || out[0]["files_fetched"] != float64(28) {
			t.Errorf("stdout: want one summary object, got %v", out)
		}
		start := hasMsg(errs, "INFO", "start")
		if start == nil || start["source"] != stream || start["version"] == nil || start["filters"] == nil {
			t.Errorf("no start line with version, source and filters: %v", start)
		}
		if hasMsg(errs, "INFO", "progress") == nil {
			t.Errorf("no progress line in JSON:\n%s", stderr)
		}
		if w := hasMsg(errs, "WARN", "$SSMIRROR_NOT_A_SETTING is not a setting of ssmirror and is ignored"); w == nil {
			t.Errorf("the unknown variable's warning is not a JSON line:\n%s", stderr)
		}
	})
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"failed run", []string{other, stream, "TARGET"}, 1},
		{"usage error", []string{"--max=0", keyring, stream, "TARGET"}, 2},
		{"unreachable catalogue", []string{keyring, "http://127.0.0.1:1/", "TARGET"}, 1},
		{"dry run", []string{"--dry-run", keyring, stream, "TARGET", "release=noble"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // the unreachable catalogue spends seconds in the retries' backoff
			args := []string{"--log-format=json"}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "TARGET", filepath.Join(t.TempDir(), "m")))
			}
			code, stdout, stderr := runBinary(t, bin, env, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, stderr)
			}
			errs := checkJSONLines(t, "stderr", stderr)
			checkJSONLines(t, "stdout", stdout)
			if tc.code != 0 && len(errs) == 0 {
				t.Errorf("no JSON line on stderr:\n%s", stderr)
			} else if tc.code != 0 {
				last := errs[len(errs)-1]
				if last["level"] != "ERROR" || last["error"] == nil || last["exit_code"] != float64(tc.code) {
					t.Errorf("the final error is not a JSON error line: %v", last)
				}
			}
		})
	}
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
		code, stdout, stderr := runBinary(t, bin, env, "--log-format", "json", keyring, stream, dir)
		if code != exitLocked {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		checkJSONLines(t, "stderr", stderr)
		checkJSONLines(t, "stdout", stdout)
	})
	t.Run("interrupted", func(t *testing.T) {
		// An upstream that serves the catalogue (and answers for a hub's record, which it has
		// not) and holds every content request until the end.
		release := make(chan struct{})
		files := http.FileServer(http.Dir(stream))
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, "/streams/") && !strings.HasPrefix(r.URL.Path, "/.ssmirror/") {
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			files.ServeHTTP(w, r)
		}))
		defer up.Close()
		defer close(release)
		cmd := exec.Command(bin, "--log-format", "json", "-v", "--progress", "--progress-interval", "10ms", keyring, up.URL+"/", filepath.Join(t.TempDir(), "m"))
		cmd.Env = append(os.Environ(), env...)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		pipe, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		sc := bufio.NewScanner(pipe)
		signalled := false
		for sc.Scan() {
			stderr.WriteString(sc.Text() + "\n")
			// the plan is logged (-v) before any transfer; text or JSON alike
			if !signalled && strings.Contains(sc.Text(), "plan") {
				cmd.Process.Signal(syscall.SIGINT)
				signalled = true
			}
		}
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Fatalf("exit %d, want 130\n%s", code, stderr.String())
		}
		errs := checkJSONLines(t, "stderr", stderr.String())
		checkJSONLines(t, "stdout", stdout.String())
		if len(errs) == 0 {
			t.Fatalf("no JSON line on stderr:\n%s", stderr.String())
		}
		if last := errs[len(errs)-1]; last["level"] != "ERROR" || last["signal"] != "SIGINT" {
			t.Errorf("the final line does not say SIGINT: %v", last)
		}
	})
}

// noNulls fails on any null in a decoded JSON value.
func noNulls(t *testing.T, path string, v any) {
	t.Helper()
	switch v := v.(type) {
	case nil:
		t.Errorf("%s is null", path)
	case map[string]any:
		for k, x := range v {
			noNulls(t, path+"."+k, x)
		}
	case []any:
		for i, x := range v {
			noNulls(t, path+"["+string(rune('0'+i%10))+"]", x)
		}
	}
}

// TestJSONSummaryEveryRun: --json prints one summary object for every run, dry runs and early
// failures included, with ok, error, source, target and dry_run, and no nulls.
func TestJSONSummaryEveryRun(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	stream := filepath.Join(fx, "stream")
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	lockedDir := t.TempDir()
	dst, err := dirstore.New(lockedDir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lock, _, err := sync.AcquireLock(t.Context(), dst, sync.LockOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Release() }) // after the parallel subtests, which a defer would not wait for

	cases := []struct {
		name           string
		source, target string
		args           []string
		code           int
		ok, dryRun     bool
		errHas         string
	}{
		{"success", stream, "", []string{keyring, "arch=amd64"}, 0, true, false, ""},
		{"dry run", stream, "", []string{"--dry-run", keyring, "release=noble"}, 0, true, true, ""},
		{"catalogue unreachable", "http://127.0.0.1:1/", "", []string{keyring}, 1, false, false, "connection refused"},
		{"dry run, catalogue unreachable", "http://127.0.0.1:1/", "", []string{"--dry-run", keyring}, 1, false, true, "connection refused"},
		{"lock held", stream, lockedDir, []string{keyring}, exitLocked, false, false, "locked by another ssmirror run"},
		{"bad keyring", stream, "", []string{"--keyring=/nonexistent.gpg"}, exitUsage, false, false, "nonexistent.gpg"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // the unreachable catalogues spend seconds in the retries' backoff
			target := tc.target
			if target == "" {
				target = filepath.Join(t.TempDir(), "m")
			}
			args := append([]string{"--json", tc.source, target}, tc.args...)
			// flags after the positionals are still flags
			code, stdout, stderr := runBinary(t, bin, nil, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, stderr)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(stdout), &m); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
			}
			noNulls(t, "summary", m)
			if m["ok"] != tc.ok || m["dry_run"] != tc.dryRun || m["source"] != tc.source || m["target"] != target {
				t.Errorf("ok %v dry_run %v source %v target %v; want %v %v %s %s", m["ok"], m["dry_run"], m["source"], m["target"], tc.ok, tc.dryRun, tc.source, target)
			}
			if e, _ := m["error"].(string); !strings.Contains(e, tc.errHas) || (tc.errHas == "") != (e == "") {
				t.Errorf("error %q, want it to hold %q", e, tc.errHas)
			}
			for _, k := range []string{"items_added", "files_fetched", "metadata_written", "deleted", "drifted", "added", "removed", "stages"} {
				if _, ok := m[k]; !ok {
					t.Errorf("summary lacks %s", k)
				}
			}
		})
	}
}

// TestVerboseLogsRetries: with -v, each request the HTTP source repeats after a failure (a body
// cut off mid-transfer, a 503) is logged.
func TestVerboseLogsRetries(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	stream := filepath.Join(fx, "stream")
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	const cut = "/noble/amd64/20250718/squashfs"
	const unavailable = "/noble/amd64/20250718/squashfs.manifest"
	var mu gosync.Mutex
	seen := map[string]int{}
	files := http.FileServer(http.Dir(stream))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		n := seen[r.URL.Path]
		mu.Unlock()
		switch {
		case r.URL.Path == cut && n == 1:
			// Half the body, then the connection drops.
			data, err := os.ReadFile(filepath.Join(stream, cut))
			if err != nil {
				t.Error(err)
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		case r.URL.Path == unavailable && n == 1:
			http.Error(w, "try later", http.StatusServiceUnavailable)
		default:
			files.ServeHTTP(w, r)
		}
	}))
	defer up.Close()
	code, _, stderr := runBinary(t, bin, nil, "-v", "--log-format", "json", keyring, up.URL+"/", filepath.Join(t.TempDir(), "m"), "release=noble", "arch=amd64")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	objs := checkJSONLines(t, "stderr", stderr)
	retried := map[string]bool{}
	for _, o := range objs {
		if o["msg"] == "retrying" {
			retried[o["url"].(string)] = true
		}
	}
	for _, p := range []string{cut, unavailable} {
		if !retried[up.URL+p] {
			t.Errorf("no retry of %s logged:\n%s", p, stderr)
		}
	}
}

// TestRedirectStderr: what other code writes on os.Stderr (the AWS SDK's default logger) comes
// out as JSON lines under --log-format json.
func TestRedirectStderr(t *testing.T) {
	var buf bytes.Buffer
	jl := newJSONLines(&buf)
	restore, err := redirectStderr(jl)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(os.Stderr, "SDK 2026/11/29 23:00:00 WARN Response has no supported checksum. Not validating response payload.")
	restore()
	jl.Flush()
	objs := checkJSONLines(t, "stderr", buf.String())
	if len(objs) != 1 || objs[0]["level"] != "WARN" || !strings.Contains(objs[0]["msg"].(string), "WARN Response has no supported checksum") {
		t.Errorf("got %q", buf.String())
	}
}
