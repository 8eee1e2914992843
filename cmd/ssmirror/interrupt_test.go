package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
)

// TestInterruptOneLine stops a run with two large files in flight by a real SIGINT: stderr
// says so in one line (what was published, how many files the run kept, that a rerun resumes)
// instead of one ERROR per file in flight; with --log-format json that line is one JSON object
// and every line still parses. With two targets ("fanout") the one line says it of each target.
func TestInterruptOneLine(t *testing.T) {
	signer, keyring := testKeys(t)
	s, err := streamtest.Generate(streamtest.Config{
		Releases: []string{"noble"}, Arches: []string{"amd64", "arm64"}, Versions: []string{"20250718"},
		Kernels: []string{"ga"}, SquashfsSize: 32 << 20, Seed: 11,
	}, signer)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	for _, tc := range []struct{ name, format string }{{"text", "text"}, {"json", "json"}, {"fanout", "text"}} {
		format := tc.format
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each its own upstream and target; most of the time is the throttled transfer
			th := &throttled{h: s.Handler()}
			up := httptest.NewServer(th)
			defer up.Close()
			dir := t.TempDir()
			args := []string{"--keyring", keyring, "--log-format", format, "--range-streams", "1", up.URL + "/", dir + "/m"}
			if tc.name == "fanout" {
				args = append(args, "--target", dir+"/n")
			}
			if format == "json" {
				args = append(args, "--progress", "--progress-interval", "100ms") // progress lines are JSON too
			}
			cmd := exec.Command(bin, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for th.sent.Load() < 24<<20 {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("the transfers never got going: %s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != 130 {
				t.Fatalf("exit %d, want 130; stderr:\n%s", code, stderr.String())
			}
			for _, m := range []string{"m", "n"} {
				if _, err := os.Stat(dir + "/" + m + "/streams"); err == nil {
					t.Errorf("an interrupted run published metadata in %s", m)
				}
			}
			errLine := regexp.MustCompile(`interrupted by SIGINT; nothing published; [1-9][0-9]* files? kept; rerun resumes`)
			if tc.name == "fanout" {
				target := func(m string) string {
					return regexp.QuoteMeta(dir+"/"+m) + `: nothing published; [0-9]+ files? kept; rerun resumes`
				}
				errLine = regexp.MustCompile(`interrupted by SIGINT; ` + target("m") + "; " + target("n") + "$")
			}
			var found int
			for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				if format == "json" {
					var obj map[string]any
					if err := json.Unmarshal([]byte(line), &obj); err != nil {
						t.Errorf("stderr line is not JSON: %q", line)
					}
					if obj["level"] == "ERROR" && obj["msg"] != "interrupted" {
						t.Errorf("an ERROR besides the interrupt: %s", line)
					}
				} else if strings.Contains(line, "ERROR") || strings.Contains(line, "transfer failed") {
					t.Errorf("an ERROR line besides the interrupt: %s", line)
				}
				if errLine.MatchString(line) {
					found++
				}
			}
			if found != 1 {
				t.Errorf("%d lines say %q, want 1; stderr:\n%s", found, errLine, stderr.String())
			}
			for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
				if format == "json" && line != "" && !json.Valid([]byte(line)) {
					t.Errorf("stdout line is not JSON: %q", line)
				}
			}
			t.Logf("stderr:\n%s\nstdout:\n%s", stderr.String(), stdout.String())
		})
	}
}
