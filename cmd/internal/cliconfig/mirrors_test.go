package cliconfig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"

	"github.com/spf13/pflag"
)

// writeConf writes a config file and returns its path.
func writeConf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.conf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncFlagSet is the sync flag set parsed from args.
func syncFlagSet(t *testing.T, args ...string) (*Sync, *pflag.FlagSet) {
	t.Helper()
	var f Sync
	fs := pflag.NewFlagSet("sync", pflag.ContinueOnError)
	f.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &f, fs
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const twoMirrors = `# shared
max = 1
mirror = https://fallback.example/top/
lock-timeout = 5m

[mirror stable]
source = https://images.example/stable/
target = s3://bucket/stable
max = 2
mirror = https://fallback.example/stable/
[filter]
arch=amd64
release~^(jammy|noble)$
[filter]
os=grub

[mirror lxd]
source = https://lxd.example/
target = /srv/lxd
no-verify = true
`

// Each section sees the top's settings, its own replacing them key by key, and only its own
// [filter] groups; flag > environment > section > top.
func TestMirrorSectionsLayering(t *testing.T) {
	path := writeConf(t, twoMirrors)
	env := map[string]string{"SSMIRROR_CONFIG": path}

	f, fs := syncFlagSet(t)
	names, err := Mirrors(fs, envOf(env), nil)
	if err != nil || !slices.Equal(names, []string{"stable", "lxd"}) {
		t.Fatalf("Mirrors = %v, %v; want [stable lxd]", names, err)
	}

	conf, err := ConfigureMirror(fs, envOf(env), nil, "stable")
	if err != nil {
		t.Fatal(err)
	}
	if conf.Source != "https://images.example/stable/" || conf.Target != "s3://bucket/stable" {
		t.Errorf("stable: source %q target %q", conf.Source, conf.Target)
	}
	if f.Max != 2 || From(fs, "max") != path+":9: " {
		t.Errorf("stable: max %d from %q, want 2 from %s:9 (the section wins over the top)", f.Max, From(fs, "max"), path)
	}
	if !slices.Equal(f.Mirrors, []string{"https://fallback.example/stable/"}) {
		t.Errorf("stable: mirror %v, want the section's only (a section's key replaces every top value)", f.Mirrors)
	}
	if f.LockTimeout.Minutes() != 5 || f.Verify.NoVerify {
		t.Errorf("stable: lock-timeout %s no-verify %v, want the top's 5m and the default", f.LockTimeout, f.Verify.NoVerify)
	}
	if len(conf.Groups) != 2 || strings.Join(conf.Groups[0].Strings(), " ") != "arch=amd64 release~^(jammy|noble)$" {
		t.Errorf("stable: groups %v", conf.Groups)
	}

	f, fs = syncFlagSet(t)
	conf, err = ConfigureMirror(fs, envOf(env), nil, "lxd")
	if err != nil {
		t.Fatal(err)
	}
	if f.Max != 1 || From(fs, "max") != path+":2: " || !f.Verify.NoVerify || len(conf.Groups) != 0 {
		t.Errorf("lxd: max %d from %q, no-verify %v, groups %v; want the top's 1, true, none", f.Max, From(fs, "max"), f.Verify.NoVerify, conf.Groups)
	}
	if !slices.Equal(f.Mirrors, []string{"https://fallback.example/top/"}) {
		t.Errorf("lxd: mirror %v, want the top's", f.Mirrors)
	}

	// The environment wins over the section, a flag over the environment: for every mirror.
	env["SSMIRROR_MAX"] = "3"
	for _, name := range names {
		f, fs = syncFlagSet(t)
		if _, err := ConfigureMirror(fs, envOf(env), nil, name); err != nil {
			t.Fatal(err)
		}
		if f.Max != 3 || From(fs, "max") != "$SSMIRROR_MAX: " {
			t.Errorf("%s: max %d from %q, want $SSMIRROR_MAX's 3", name, f.Max, From(fs, "max"))
		}
		f, fs = syncFlagSet(t, "--max=4")
		if _, err := ConfigureMirror(fs, envOf(env), nil, name); err != nil {
			t.Fatal(err)
		}
		if f.Max != 4 {
			t.Errorf("%s: max %d, want the flag's 4", name, f.Max)
		}
	}
}

// A file of one mirror is read as before, and a file of sections is refused where one mirror is
// expected (the other commands) and with SSMIRROR_SOURCE/TARGET/FILTERS.
func TestMirrorSectionsWholeFile(t *testing.T) {
	single := writeConf(t, "source = /a\ntarget = /b\n[filter]\narch=amd64\n")
	_, fs := syncFlagSet(t, "--config", single)
	if names, err := Mirrors(fs, envOf(nil), nil); err != nil || names != nil {
		t.Errorf("one-mirror file: Mirrors = %v, %v; want none", names, err)
	}
	if conf, err := Configure(fs, envOf(nil), nil); err != nil || conf.Source != "/a" || len(conf.Groups) != 1 {
		t.Errorf("one-mirror file: %+v, %v", conf, err)
	}
	_, fs = syncFlagSet(t, "--config", single, "--only-mirror", "x")
	if _, err := Mirrors(fs, envOf(nil), nil); err == nil || !strings.Contains(err.Error(), "has no [mirror NAME] sections") {
		t.Errorf("--only-mirror with a one-mirror file: %v", err)
	}
	_, fs = syncFlagSet(t, "--only-mirror", "x")
	if _, err := Mirrors(fs, envOf(nil), nil); err == nil || !strings.Contains(err.Error(), "there is no config file") {
		t.Errorf("--only-mirror without a file: %v", err)
	}

	path := writeConf(t, twoMirrors)
	_, fs = syncFlagSet(t, "--config", path)
	if _, err := Configure(fs, envOf(nil), nil); err == nil || !strings.Contains(err.Error(), "holds [mirror] sections (stable, lxd)") {
		t.Errorf("Configure of a file with sections: %v", err)
	}
	for _, v := range []string{"SOURCE", "TARGET", "FILTERS"} {
		_, fs = syncFlagSet(t, "--config", path)
		_, err := Mirrors(fs, envOf(map[string]string{"SSMIRROR_" + v: "x"}), nil)
		if err == nil || !strings.Contains(err.Error(), "$SSMIRROR_"+v+" is set") || !errors.As(err, new(UsageError)) {
			t.Errorf("$SSMIRROR_%s with sections: %v", v, err)
		}
	}
}

// Mistakes in a file of sections are refused, named FILE:LINE.
func TestMirrorSectionsMistakes(t *testing.T) {
	const sec = "[mirror a]\nsource = /s\ntarget = /t\n"
	for _, tc := range []struct {
		name, text string
		want       string // after "FILE:"
	}{
		{"no source", "max = 1\n[mirror a]\ntarget = /t\n", "2: [mirror a] has no source"},
		{"no target", "[mirror a]\nsource = /s\n[filter]\narch=amd64\n", "1: [mirror a] has no target"},
		{"twice", sec + "\n[mirror a]\nsource = /s\ntarget = /u\n", "5: [mirror a] again (first on line 1)"},
		{"no name", "[mirror]\nsource = /s\ntarget = /t\n", "1: [mirror] needs a name"},
		{"bad name", "[mirror a b]\nsource = /s\ntarget = /t\n", "1: [mirror a b]: a mirror's name is"},
		{"unknown section", "[mirrors a]\n", "1: unknown section [mirrors a]"},
		{"source at the top", "source = /s\n" + sec, "1: source at the top of a file with [mirror] sections"},
		{"target at the top", "max = 1\ntarget = /t\n" + sec, "2: target at the top"},
		{"filter at the top", "[filter]\narch=amd64\n" + sec, "1: [filter] before the first [mirror] section"},
		{"parallel in a section", sec + "parallel-mirrors = 2\n", "4: parallel-mirrors in [mirror a]"},
		{"only-mirror in the file", "only-mirror = a\n" + sec, "1: only-mirror picks mirrors for one run"},
		{"setting after a section's filter", sec + "[filter]\narch=amd64\nmax = 1\n", "6: \"max = 1\" is a setting"},
		{"secret in a section", sec + "signing-passphrase = x\n", "4: signing-passphrase: secrets are not read"},
		{"duplicate key in a section", sec + "max = 1\nmax = 2\n", "5: max set twice (first on line 4)"},
		{"unknown key in a section", sec + "max-versions = 1\n", "4: unknown setting \"max-versions\""},
		{"bad value in a section", sec + "max = x\n", "4: max:"},
		{"empty filter in a section", sec + "[filter]\n", " [mirror a]: [filter] section 1 is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConf(t, tc.text)
			_, fs := syncFlagSet(t, "--config", path)
			names, err := Mirrors(fs, envOf(nil), nil)
			for _, n := range names { // the errors of one section's settings: when it is configured
				if err != nil {
					break
				}
				_, fs := syncFlagSet(t, "--config", path)
				_, err = ConfigureMirror(fs, envOf(nil), nil, n)
			}
			if err == nil || !strings.HasPrefix(err.Error(), path+":"+tc.want) {
				t.Fatalf("got %v\nwant %s:%s…", err, path, tc.want)
			}
			if !errors.As(err, new(UsageError)) {
				t.Errorf("%v is not a usage error", err)
			}
		})
	}
}

// --only-mirror picks sections by name, in the file's order; a name no section has is refused
// with the names there are.
func TestPickMirrors(t *testing.T) {
	names := []string{"stable", "bootloaders", "lxd"}
	if got, err := PickMirrors("f.conf", names, nil); err != nil || !slices.Equal(got, names) {
		t.Errorf("none picked: %v, %v", got, err)
	}
	if got, err := PickMirrors("f.conf", names, []string{"lxd", "stable"}); err != nil || !slices.Equal(got, []string{"stable", "lxd"}) {
		t.Errorf("lxd, stable: %v, %v; want the file's order", got, err)
	}
	_, err := PickMirrors("f.conf", names, []string{"bootloader"})
	if err == nil || err.Error() != "--only-mirror bootloader: no [mirror bootloader] in f.conf (its mirrors: stable, bootloaders, lxd); did you mean bootloaders?" {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := PickMirrors("f.conf", names, []string{"lxd", "lxd"}); err == nil {
		t.Error("a name given twice accepted")
	}
}

// RunMirrors runs every mirror whatever the others do, never more than parallel at once, and
// starts none once the context is done.
func TestRunMirrors(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	for _, parallel := range []int{1, 2, 5} {
		var running, most atomic.Int32
		var mu gosync.Mutex
		var ran []string
		errs := RunMirrors(t.Context(), names, parallel, func(_ context.Context, name string) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			mu.Lock()
			ran = append(ran, name)
			mu.Unlock()
			if name == "b" {
				return fmt.Errorf("b failed")
			}
			return nil
		})
		slices.Sort(ran)
		if !slices.Equal(ran, names) {
			t.Errorf("parallel %d: ran %v, want all", parallel, ran)
		}
		if most.Load() > int32(parallel) {
			t.Errorf("parallel %d: %d ran at once", parallel, most.Load())
		}
		for i, err := range errs {
			if (err != nil) != (names[i] == "b") {
				t.Errorf("parallel %d: %s: %v", parallel, names[i], err)
			}
		}
	}

	ctx, cancel := context.WithCancelCause(t.Context())
	stop := errors.New("stopped")
	var ran []string
	errs := RunMirrors(ctx, names, 1, func(_ context.Context, name string) error {
		ran = append(ran, name)
		if name == "b" {
			cancel(stop)
		}
		return nil
	})
	if !slices.Equal(ran, []string{"a", "b"}) {
		t.Errorf("after cancel: ran %v, want a, b", ran)
	}
	for i, err := range errs[2:] {
		if !errors.Is(err, stop) || !strings.Contains(err.Error(), "mirror "+names[i+2]+" not started") {
			t.Errorf("%s: %v", names[i+2], err)
		}
	}
}
