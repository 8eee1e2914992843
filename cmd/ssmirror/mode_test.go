package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A curated target run without --signing-key, or with another key, is a configuration mistake:
// exit 2, the message names both modes and the flag that allows the change, nothing is written.
// Before, the run exited 0 having republished upstream's metadata under the mirror.
func TestModeChangeExitCode(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	stream := filepath.Join(fx, "stream")
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	key := "--signing-key=" + filepath.Join(fx, "keys", "test-signing-key.asc")
	other := "--signing-key=" + filepath.Join(fx, "keys", "other-signing-key.asc")
	dir := filepath.Join(t.TempDir(), "m")
	sel := []string{"release=jammy", "arch=amd64", "--max=1"}
	args := func(extra ...string) []string {
		return append(append([]string{keyring}, extra...), append([]string{stream, dir}, sel...)...)
	}

	if code, _, stderr := runBinary(t, bin, nil, args(key)...); code != 0 {
		t.Fatalf("curated run: exit %d: %s", code, stderr)
	}
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"no key", nil, "is published curated, signed with key"},
		{"other key", []string{other}, "would publish it curated, signed with key"},
	} {
		code, _, stderr := runBinary(t, bin, nil, args(tc.extra...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "--allow-mode-change") {
			t.Errorf("%s: exit %d, want 2 with %q and the flag; stderr:\n%s", tc.name, code, tc.want, stderr)
		}
	}
	if code, _, stderr := runBinary(t, bin, nil, args("--allow-mode-change")...); code != 0 {
		t.Fatalf("--allow-mode-change: exit %d: %s", code, stderr)
	}
}
