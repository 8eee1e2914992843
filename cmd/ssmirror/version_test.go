package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/sign"
)

func TestVersionLine(t *testing.T) {
	set := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tt := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"},
			Settings: set("vcs.revision", "0123456789abcdef", "vcs.time", "2026-11-29T22:00:00Z", "vcs.modified", "false")},
			"ssmirror v1.4.0 revision 0123456789abcdef (2026-11-29T22:00:00Z) go1.26.8"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: set("vcs.revision", "abc", "vcs.modified", "true")},
			"ssmirror dev revision abc modified go1.26.8"},
		{&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"ssmirror dev (revision unknown: built without VCS information) go1.26.8"},
		{nil, "ssmirror dev (no build information)"},
	} {
		if got := versionLine(tt.bi, tt.bi != nil); got != tt.want {
			t.Errorf("versionLine = %q, want %q", got, tt.want)
		}
	}
}

// TestVersionFromVCS builds the binary from a git repository holding this source (the go
// command stamps the revision only in a repository's own directory, not in a worktree) and
// checks `ssmirror version` names that commit.
func TestVersionFromVCS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary in a fresh repository")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to test the VCS stamp")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// The source as it is now (tracked and new files), committed in a repository of its own.
	for _, f := range strings.Split(git(root, "ls-files", "-co", "--exclude-standard"), "\n") {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree
		}
		dst := filepath.Join(repo, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(repo, "init", "-q")
	git(repo, "add", "-A")
	git(repo, "commit", "-qm", "snapshot")
	rev := git(repo, "rev-parse", "HEAD")

	bin := filepath.Join(t.TempDir(), "ssmirror")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/ssmirror")
	build.Dir = repo
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	code, stdout, stderr := runBinary(t, bin, nil, "version")
	if code != 0 || !regexp.MustCompile(`^ssmirror \S+ revision `+rev+` \(\d{4}-\d\d-\d\dT[0-9:]+Z\) go1\.`).MatchString(stdout) {
		t.Errorf("version: exit %d, %q (stderr %q); want revision %s", code, stdout, stderr, rev)
	}
}

// TestKeygenFingerprint: keygen prints the fingerprint of the key it wrote, grouped as gpg does.
func TestKeygenFingerprint(t *testing.T) {
	dir := t.TempDir()
	kr := filepath.Join(dir, "k.gpg")
	stdout, stderr, code := runMain(t, "keygen", "--secret-key", filepath.Join(dir, "k.asc"), "--keyring", kr)
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`(?m)^fingerprint: ((?:[0-9A-F]{4} {1,2}){9}[0-9A-F]{4})$`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no fingerprint line in %q", stdout)
	}
	keyring, err := sign.LoadKeyring(kr)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.ReplaceAll(m[1], " ", ""), keyring.Fingerprints(); len(want) != 1 || got != want[0] {
		t.Errorf("printed %s, keyring has %v", got, want)
	}
	if !strings.Contains(m[1], "  ") {
		t.Errorf("fingerprint not split in halves as gpg shows it: %s", m[1])
	}
}
