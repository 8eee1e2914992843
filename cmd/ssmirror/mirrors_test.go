package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mirrorsConf writes a config file of two [mirror] sections reading the fixture stream over
// HTTP: "broken", first in the file, whose target cannot be created (a directory under a
// regular file), and "images", into dir/images. extra goes at the top of the file (line 3),
// imagesExtra in the images section, before its [filter] (line 13).
func mirrorsConf(t *testing.T, dir, extra, imagesExtra string) string {
	t.Helper()
	fx := fixtureDir(t)
	up := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(fx, "stream"))))
	t.Cleanup(up.Close)
	blocker := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	text := "keyring = " + filepath.Join(fx, "keys", "test-keyring.gpg") + "\nmax = 1\n" + extra + `
[mirror broken]
source = ` + up.URL + `/
target = ` + filepath.Join(blocker, "m") + `
[filter]
os~(grub*|pxelinux)

[mirror images]
source = ` + up.URL + `/
target = ` + filepath.Join(dir, "images") + `
` + imagesExtra + `[filter]
arch=amd64
release=noble
`
	p := filepath.Join(dir, "mirrors.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Two mirrors from one config: the one that fails does not stop the other, which publishes a
// mirror that passes verify; the exit code is the failure's; each mirror's result is reported.
func TestMirrorsOneFailsOtherPublishes(t *testing.T) {
	for _, parallel := range []string{"1", "2"} {
		t.Run("parallel="+parallel, func(t *testing.T) {
			dir := t.TempDir()
			prom := filepath.Join(dir, "images.prom")
			conf := mirrorsConf(t, dir, "", "metrics-textfile = "+prom+"\n")
			t.Setenv("SSMIRROR_MAXX", "1")
			stdout, stderr, code := runMain(t, "sync", "--config", conf, "--parallel-mirrors", parallel)
			if n := strings.Count(stderr, "SSMIRROR_MAXX"); n != 1 {
				t.Errorf("the unknown variable warned about %d times, want once:\n%s", n, stderr)
			}
			if code != exitFailure {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailure, stdout, stderr)
			}
			for _, want := range []string{"== mirror broken ==", "== mirror images ==", "mirrored http", "items: 8 added", "== 2 mirrors: 1 ok, 1 failed =="} {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, want := range []string{"ssmirror: mirror broken: ", "ssmirror: 1 mirror(s) failed: broken (exit 1)"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(stderr, "mirror images:") {
				t.Errorf("stderr has a complaint about images:\n%s", stderr)
			}
			if m, err := os.ReadFile(prom); err != nil || !strings.Contains(string(m), `ssmirror_last_run_error{mirror="images",target="`+filepath.Join(dir, "images")+`"} 0`) {
				t.Errorf("the images mirror's metrics (labelled with the mirror): %v\n%s", err, m)
			}
			out, errs, code := runMain(t, "verify", "--keyring", filepath.Join(fixtureDir(t), "keys", "test-keyring.gpg"), filepath.Join(dir, "images"))
			if code != 0 {
				t.Errorf("verify of the published mirror: exit %d\n%s%s", code, out, errs)
			}
		})
	}
}

// --json prints one document: each mirror's summary under its name, in the file's order.
func TestMirrorsJSON(t *testing.T) {
	dir := t.TempDir()
	conf := mirrorsConf(t, dir, "", "")
	stdout, stderr, code := runMain(t, "sync", "--config", conf, "--json")
	if code != exitFailure {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var doc struct {
		OK       bool `json:"ok"`
		ExitCode int  `json:"exit_code"`
		Mirrors  []struct {
			Mirror   string `json:"mirror"`
			OK       bool   `json:"ok"`
			ExitCode int    `json:"exit_code"`
			Error    string `json:"error"`
			Summary  *struct {
				OK         bool   `json:"ok"`
				Target     string `json:"target"`
				ItemsAdded int    `json:"items_added"`
			} `json:"summary"`
		} `json:"mirrors"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
	}
	if doc.OK || doc.ExitCode != exitFailure || len(doc.Mirrors) != 2 {
		t.Fatalf("%+v", doc)
	}
	b, i := doc.Mirrors[0], doc.Mirrors[1]
	if b.Mirror != "broken" || b.OK || b.ExitCode != exitFailure || b.Error == "" || b.Summary == nil || b.Summary.OK {
		t.Errorf("broken: %+v", b)
	}
	if i.Mirror != "images" || !i.OK || i.ExitCode != 0 || i.Summary == nil || !i.Summary.OK || i.Summary.ItemsAdded != 8 || i.Summary.Target != filepath.Join(dir, "images") {
		t.Errorf("images: %+v", i)
	}

	// With --log-format json every line of both streams is an object naming its mirror.
	stdout, stderr, _ = runMain(t, "sync", "--config", conf, "--log-format", "json", "-v")
	for _, stream := range []string{stdout, stderr} {
		for _, line := range strings.Split(strings.TrimSpace(stream), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Errorf("not a JSON line: %q", line)
			}
		}
	}
	if !strings.Contains(stderr, `{"mirror":"images",`) || !strings.Contains(stderr, `{"mirror":"broken",`) {
		t.Errorf("stderr lines do not name their mirror:\n%s", stderr)
	}
}

// --only-mirror runs the sections named; mistakes in any section stop the job before any
// mirror writes anything.
func TestMirrorsPickAndRefuse(t *testing.T) {
	dir := t.TempDir()
	conf := mirrorsConf(t, dir, "", "")
	stdout, stderr, code := runMain(t, "sync", "--config", conf, "--only-mirror", "images")
	if code != 0 || strings.Contains(stdout, "broken") || !strings.Contains(stdout, "== 1 mirrors: 1 ok, 0 failed ==") {
		t.Fatalf("--only-mirror images: exit %d\n%s\n%s", code, stdout, stderr)
	}

	for _, tc := range []struct {
		name  string
		extra string   // at the top of the file
		tail  string   // in the last section
		args  []string // after sync --config FILE
		want  string
	}{
		{"unknown mirror", "", "", []string{"--only-mirror", "image"}, "--only-mirror image: no [mirror image] in"},
		{"positional arguments", "", "", []string{"/src", "/dst"}, "SOURCE, TARGET and FILTER arguments (/src /dst) do not go with a config file of [mirror] sections"},
		{"unknown key in the last section", "", "max-version = 1\n", nil, `:13: unknown setting "max-version"`},
		{"bad value in the last section", "", "max = 0\n", nil, "mirror images: " + "CONF:13: --max=0 is refused"},
		{"one textfile for two mirrors", "metrics-textfile = " + filepath.Join(dir, "m.prom") + "\n", "", nil, "mirrors broken and images would both write --metrics-textfile"},
		{"parallel 0", "parallel-mirrors = 0\n", "", nil, ":3: --parallel-mirrors 0: want at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := mirrorsConf(t, dir, tc.extra, tc.tail)
			_, stderr, code := runMain(t, append([]string{"sync", "--config", conf}, tc.args...)...)
			want := strings.ReplaceAll(tc.want, "CONF", conf)
			if code != exitUsage || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "images")); err == nil {
				t.Error("a mirror ran although the configuration was refused")
			}
		})
	}
}

// The exit code of several mirrors is the worst of theirs: interrupted, then a configuration
// to fix, then a failed run, then a lock held elsewhere.
func TestWorstExit(t *testing.T) {
	for _, tc := range []struct {
		codes []int
		want  int
	}{
		{nil, 0},
		{[]int{0, 0}, 0},
		{[]int{0, exitLocked}, exitLocked},
		{[]int{exitLocked, exitFailure, 0}, exitFailure},
		{[]int{exitFailure, exitUsage}, exitUsage},
		{[]int{exitUsage, 130, exitFailure}, 130},
	} {
		if got := worstExit(tc.codes); got != tc.want {
			t.Errorf("worstExit(%v) = %d, want %d", tc.codes, got, tc.want)
		}
	}
}

// A [mirror] section with several target lines is a fan-out run of its own: both targets
// publish, each with its metrics series labelled by the mirror and by the target. --target on
// the command line of a run of [mirror] sections is refused.
func TestMirrorFanOut(t *testing.T) {
	dir := t.TempDir()
	prom := filepath.Join(dir, "images.prom")
	second := filepath.Join(dir, "images2")
	conf := mirrorsConf(t, dir, "", "target = "+second+"\nmetrics-textfile = "+prom+"\n")
	stdout, stderr, code := runMain(t, "sync", "--config", conf, "--only-mirror", "images")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	m, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{filepath.Join(dir, "images"), second} {
		if want := `ssmirror_last_run_error{mirror="images",target="` + target + `"} 0`; !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
		out, errs, code := runMain(t, "verify", "--keyring", filepath.Join(fixtureDir(t), "keys", "test-keyring.gpg"), target)
		if code != 0 {
			t.Errorf("verify of %s: exit %d\n%s%s", target, code, out, errs)
		}
	}
	_, stderr, code = runMain(t, "sync", "--config", conf, "--target", filepath.Join(dir, "more"))
	if code != exitUsage || !strings.Contains(stderr, "--target") {
		t.Errorf("--target with [mirror] sections: exit %d, want %d\n%s", code, exitUsage, stderr)
	}
}
