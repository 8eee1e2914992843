package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// everyFlag lists "command --flag" for every flag of every command, from the flag sets.
func everyFlag(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, c := range commandTable() {
		for _, f := range flagsOf(commandFlags(c)) {
			out[c.name] = append(out[c.name], f.name)
		}
	}
	if len(out["sync"]) < 30 || len(out["verify"]) < 5 || len(out["keygen"]) < 5 {
		t.Fatalf("flag sets not read from the commands: %v", out)
	}
	return out
}

func TestCompletionBash(t *testing.T) {
	stdout, stderr, code := runMain(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	script := filepath.Join(t.TempDir(), "ssmirror.bash")
	if err := os.WriteFile(script, []byte(stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	for cmd, flags := range everyFlag(t) {
		for _, f := range flags {
			if !strings.Contains(stdout, "--"+f+" ") && !strings.Contains(stdout, "--"+f+`"`) {
				t.Errorf("bash completion lacks %s --%s", cmd, f)
			}
		}
	}
	// Drive the completion function as bash's completion does.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keys.gpg"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "mirror"), 0o755)
	for _, tt := range []struct {
		words []string // the last is the word being completed
		want  []string
		not   []string
	}{
		{[]string{"ssmirror", "--keyr"}, []string{"--keyring"}, nil},
		{[]string{"ssmirror", "ver"}, []string{"verify", "version"}, nil},
		{[]string{"ssmirror", "verify", "--de"}, []string{"--deep"}, []string{"--dry-run"}},
		{[]string{"ssmirror", "gc", "--dr"}, []string{"--dry-run"}, nil},
		{[]string{"ssmirror", "sync", "--log-f"}, []string{"--log-file", "--log-format"}, nil},
		{[]string{"ssmirror", "--log-format", ""}, []string{"text", "json"}, nil},
		{[]string{"ssmirror", "--keyring", "ke"}, []string{"keys.gpg"}, nil},
		{[]string{"ssmirror", "--max", ""}, nil, []string{"--keyring", "mirror"}},
		{[]string{"ssmirror", "completion", ""}, []string{"bash", "zsh", "fish"}, nil},
		{[]string{"ssmirror", "--no-verify", "mir"}, []string{"mirror"}, nil},
	} {
		var quoted []string
		for _, w := range tt.words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := `source ` + script + `
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=` + string(rune('0'+len(tt.words)-1)) + `
_ssmirror
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", "-c", prog)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", tt.words, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range tt.want {
			if !contains(got, w) {
				t.Errorf("completing %v: got %v, want %s among them", tt.words, got, w)
			}
		}
		for _, w := range tt.not {
			if contains(got, w) {
				t.Errorf("completing %v: got %v, should not offer %s", tt.words, got, w)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestCompletionZshFish: both scripts name every flag of every command; their syntax is checked
// by the shells when they are installed (they are not on the CI image: logged).
func TestCompletionZshFish(t *testing.T) {
	flags := everyFlag(t)
	for _, shell := range []string{"zsh", "fish"} {
		stdout, stderr, code := runMain(t, "completion", shell)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", shell, code, stderr)
		}
		for cmd, fl := range flags {
			if !strings.Contains(stdout, cmd) {
				t.Errorf("%s completion lacks the command %s", shell, cmd)
			}
			for _, f := range fl {
				want := "--" + f
				if shell == "fish" {
					want = "-l " + f + " "
				}
				if !strings.Contains(stdout, want) {
					t.Errorf("%s completion lacks %s %s", shell, cmd, want)
				}
			}
		}
		path, err := exec.LookPath(shell)
		if err != nil {
			missingTool(t, shell, "syntax not checked")
			continue
		}
		script := filepath.Join(t.TempDir(), "ssmirror."+shell)
		os.WriteFile(script, []byte(stdout), 0o644)
		check := exec.Command(path, "-n", script)
		if shell == "fish" {
			check = exec.Command(path, "--no-execute", script)
		}
		if out, err := check.CombinedOutput(); err != nil {
			t.Errorf("%s syntax: %v\n%s", shell, err, out)
		}
		if shell != "fish" {
			continue
		}
		// fish can be asked what it would complete.
		for line, want := range map[string][]string{
			"ssmirror --keyr":         {"--keyring"},
			"ssmirror verify --de":    {"--deep"},
			"ssmirror ver":            {"verify", "version"},
			"ssmirror --log-format ":  {"json", "text"},
			"ssmirror completion ":    {"bash", "fish", "zsh"},
			"ssmirror status --js":    {"--json"},
			"ssmirror gc --no-verif":  nil, // gc has no --no-verify
			"ssmirror --no-checksumm": {"--no-checksumming-reader"},
		} {
			out, err := exec.Command(path, "-c", "source "+script+"; complete -C'"+line+"'").CombinedOutput()
			if err != nil {
				t.Fatalf("fish complete -C %q: %v\n%s", line, err, out)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if w, _, _ := strings.Cut(l, "\t"); w != "" {
					got = append(got, w)
				}
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("fish completes %q as %v, want %v", line, got, want)
			}
		}
	}
	if _, stderr, code := runMain(t, "completion", "tcsh"); code != 2 || !strings.Contains(stderr, "bash, zsh or fish") {
		t.Errorf("unknown shell: exit %d, %s", code, stderr)
	}
}

// TestManPage: the man page has its sections and every flag of every command, and groff and
// man read it without a warning.
func TestManPage(t *testing.T) {
	page, stderr, code := runMain(t, "man")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, s := range []string{".TH SSMIRROR 1 ", ".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH COMMANDS", ".SH ENVIRONMENT", `.SH "EXIT STATUS"`, `.SH "SEE ALSO"`} {
		if !strings.Contains(page, s) {
			t.Errorf("man page lacks %s", s)
		}
	}
	for cmd, fl := range everyFlag(t) {
		if !strings.Contains(page, ".SS "+cmd+"\n") {
			t.Errorf("man page lacks the command %s", cmd)
		}
		for _, f := range fl {
			if !strings.Contains(page, `\fB\-\-`+strings.ReplaceAll(f, "-", `\-`)+`\fR`) {
				t.Errorf("man page lacks %s --%s", cmd, f)
			}
		}
	}
	file := filepath.Join(t.TempDir(), "ssmirror.1")
	if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	if groff, err := exec.LookPath("groff"); err == nil {
		out, err := exec.Command(groff, "-man", "-ww", "-z", file).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff -man -ww: %v\n%s", err, out)
		}
	} else {
		missingTool(t, "groff", "roff not checked")
	}
	if man, err := exec.LookPath("man"); err == nil {
		cmd := exec.Command(man, "-l", file)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "EXIT STATUS") || !strings.Contains(string(out), "lock-timeout") {
			t.Errorf("man -l: %v\n%s", err, out)
		}
	} else {
		missingTool(t, "man", "rendering not checked")
	}
}

// missingTool logs that a checking tool is absent; with CI=true (where .ci/run installs it) that
// is a failure.
func missingTool(t *testing.T, tool, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Errorf("%s is not installed (CI=true: .ci/run installs it): %s", tool, what)
		return
	}
	t.Logf("%s not installed: %s", tool, what)
}
