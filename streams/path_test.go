package streams

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestValidPath(t *testing.T) {
	good := []string{
		"jammy/amd64/20250718/squashfs",
		"bootloaders/uefi/amd64/20231004.0/shim-signed.tar.xz",
		"a", "a..b/c", "...", ".hidden/x", "ünïcode/ok", "with space/x", "streams/v1/x:y.json",
	}
	for _, p := range good {
		if err := ValidPath(p); err != nil {
			t.Errorf("ValidPath(%q) = %v", p, err)
		}
	}
	bad := []string{
		"", "/abs", "a/../b", "..", "../x", "x/..", ".", "./x", "a/./b", "a//b", "a/", "a\\b",
		"..\\x", "a\x00b", "a\nb", "a\x7fb", "a\tb",
	}
	for _, p := range bad {
		if err := ValidPath(p); err == nil {
			t.Errorf("ValidPath(%q) accepted", p)
		}
	}
}

// checkContained fails when a path ValidPath accepts is not strictly inside root once joined.
func checkContained(t *testing.T, p string) {
	if ValidPath(p) != nil {
		return
	}
	root := filepath.FromSlash("/srv/mirror")
	joined := filepath.Join(root, filepath.FromSlash(p))
	if !strings.HasPrefix(joined, root+string(filepath.Separator)) {
		t.Fatalf("ValidPath accepted %q, which joins to %q outside %q", p, joined, root)
	}
	if rel, err := filepath.Rel(root, joined); err != nil || rel != filepath.FromSlash(p) {
		t.Fatalf("ValidPath accepted %q, which cleans to %q", p, rel)
	}
}

func TestValidPathContained(t *testing.T) {
	for _, p := range []string{"a/b", "x..", "..x/y", "a/b/c.d"} {
		checkContained(t, p)
	}
}
