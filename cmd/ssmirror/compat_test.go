package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/sync"
)

// TestPrintPlanSstreamFormat: the dry run's stdout is sstream-mirror's (sizes in whole MiB,
// truncated toward zero as Python's int() does: -8.99 is -8), then the net change; the exact
// totals go to the summary writer.
func TestPrintPlanSstreamFormat(t *testing.T) {
	const mib = 1 << 20
	vk := func(p, v string) sync.VersionKey { return sync.VersionKey{ContentID: "c", Product: p, Version: v} }
	p := &sync.Plan{
		Added: []sync.ItemChange{
			{VersionKey: vk("com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04", "20250718"), Item: "squashfs", Path: "noble/amd64/20250718/squashfs", Size: 300*mib + 123},
			{VersionKey: vk("com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04", "20250718"), Item: "boot-kernel", Path: "noble/amd64/20250718/ga-24.04/generic/boot-kernel", Size: mib - 1},
		},
		Removed: []sync.ItemChange{
			{VersionKey: vk("com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04", "20250701"), Item: "squashfs", Path: "noble/amd64/20250701/squashfs", Size: 310 * mib},
		},
		Kept:  4,
		Fetch: []sync.Fetch{{Path: "noble/amd64/20250718/squashfs", Size: 300*mib + 123}},
	}
	var out, summary bytes.Buffer
	printPlan(&out, &summary, &sync.Report{Plan: p})
	want := `+ com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04 20250718 squashfs noble/amd64/20250718/squashfs 300 Mb
+ com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04 20250718 boot-kernel noble/amd64/20250718/ga-24.04/generic/boot-kernel 0 Mb
- com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04 20250701 squashfs noble/amd64/20250701/squashfs 310 Mb
-8 Mb change
`
	if out.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), want)
	}
	if !strings.Contains(summary.String(), "2 items to add (301.0 MiB), 1 to remove (310.0 MiB), 4 kept; 1 files to fetch (300.0 MiB)") {
		t.Errorf("summary: %s", summary.String())
	}
}

// TestLogFile: --log-file receives the log (here a -v run's steps and a failed run's error),
// appended, and standard error keeps only what is not the log; a log file that cannot be
// opened is a usage error before any work.
func TestLogFile(t *testing.T) {
	fx := fixtureDir(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "ssmirror.log")
	if err := os.WriteFile(logPath, []byte("earlier line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	_, stderr, code := runMain(t, keyring, "-v", "--log-file", logPath, "--no-checksumming-reader", filepath.Join(fx, "stream"), filepath.Join(dir, "m"), "os=pxelinux")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "level=INFO") {
		t.Errorf("log lines on stderr with --log-file: %s", stderr)
	}
	// A failed run: its error is on stderr and in the log.
	_, stderr, code = runMain(t, "--keyring="+filepath.Join(fx, "keys", "other-keyring.gpg"), "--log-file", logPath, filepath.Join(fx, "stream"), filepath.Join(dir, "m2"))
	if code != 1 || !strings.Contains(stderr, "signed by a key not in the keyring") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(data)
	for _, want := range []string{"earlier line\n", "level=INFO msg=plan", "msg=published", `msg="run failed" error="streams/v1/index.sjson: signed by a key not in the keyring`} {
		if !strings.Contains(log, want) {
			t.Errorf("log file lacks %q:\n%s", want, log)
		}
	}
	_, stderr, code = runMain(t, keyring, "--log-file", filepath.Join(dir, "no", "such", "x.log"), filepath.Join(fx, "stream"), filepath.Join(dir, "m3"))
	if code != 2 || !strings.Contains(stderr, "--log-file: open ") {
		t.Errorf("unopenable log file: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "m3")); err == nil {
		t.Error("a run with an unopenable log file created its target")
	}
}

// TestMaxZero: --max=0 means "hold no version" to sstream-mirror and "all" to ssmirror's old
// default; given explicitly (flag, environment or config) it is refused with the reason.
func TestMaxZero(t *testing.T) {
	fx := fixtureDir(t)
	dir := t.TempDir()
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	for _, args := range [][]string{
		{keyring, "--max=0", filepath.Join(fx, "stream"), filepath.Join(dir, "m")},
		{"query", keyring, "--max", "0", filepath.Join(fx, "stream")},
		{keyring, "--max=-1", filepath.Join(fx, "stream"), filepath.Join(dir, "m")},
	} {
		_, stderr, code := runMain(t, args...)
		if code != 2 || !strings.Contains(stderr, "--max") || !strings.Contains(stderr, "leave --max out to keep") {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
	t.Setenv("SSMIRROR_MAX", "0")
	_, stderr, code := runMain(t, keyring, filepath.Join(fx, "stream"), filepath.Join(dir, "m"))
	if code != 2 || !strings.Contains(stderr, `sstream-mirror reads it as "hold no version"`) {
		t.Errorf("SSMIRROR_MAX=0: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "m")); err == nil {
		t.Error("a refused run created its target")
	}
}

// TestHumanUnitsEverywhere: every duration flag of every command, and every byte-count flag,
// parses human units (internal/units), so that flags added later cannot forget them.
func TestHumanUnitsEverywhere(t *testing.T) {
	for _, c := range commandTable() {
		commandFlags(c).VisitAll(func(f *pflag.Flag) {
			switch f.Value.(type) {
			case *units.Duration, *units.Size:
				return
			}
			bytesLike := strings.Contains(f.Usage, "bytes") || strings.HasSuffix(f.Name, "-size") ||
				strings.HasSuffix(f.Name, "-buffers") || strings.HasSuffix(f.Name, "-chunk")
			switch {
			case f.Value.Type() == "duration":
				t.Errorf("%s --%s is a plain duration: use fs.Var(units.NewDuration(&v, default), ...)", c.name, f.Name)
			case (f.Value.Type() == "int64" || f.Value.Type() == "int") && bytesLike:
				t.Errorf("%s --%s looks like a byte count: use fs.Var(units.NewSize(&v, default), ...)", c.name, f.Name)
			}
		})
	}
}
