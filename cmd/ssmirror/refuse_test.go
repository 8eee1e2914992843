package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/sync"
)

// snapshot reads every file under dir, the mirror's own .ssmirror/ included, except the lease
// object and the directory store's swap lock (every run takes the lease and marks it released;
// checkLeaseReleased checks that).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if filepath.ToSlash(rel) == sync.LockKey || d.Name() == dirstore.SwapLockName {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// checkLeaseReleased fails unless dir's lease object, when there is one, is marked released.
func checkLeaseReleased(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(sync.LockKey)))
	if os.IsNotExist(err) {
		return
	}
	var l sync.Lease
	if err != nil || json.Unmarshal(data, &l) != nil || !l.Released {
		t.Errorf("the target's lock is not released after the refused run: %s (%v)", data, err)
	}
}

// runRefused runs Main in this process, as the binary would, and returns the exit code first.
func runRefused(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	stdout, stderr, code = runMain(t, args...)
	return code, stdout, stderr
}

// A typo'd filter (arch==amd64) through the command line: exit 1, a message naming the filter
// and arch's values, and the target's files unchanged byte for byte, even with --prune and
// --gc-grace=0 (which would otherwise release and delete everything held).
func TestEmptySelectionCLI(t *testing.T) {
	fixture, _ := filepath.Abs(filepath.Join("..", "..", "testdata"))
	keyring := "--keyring=" + filepath.Join(fixture, "keys", "test-keyring.gpg")
	stream := filepath.Join(fixture, "stream")
	target := filepath.Join(t.TempDir(), "mirror")
	if code, _, stderr := runRefused(t, keyring, stream, target, "release=noble", "arch=amd64", "--max=1"); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	before := snapshot(t, target)

	code, stdout, stderr := runRefused(t, keyring, stream, target, "arch==amd64", "--max=1", "--prune", "--gc-grace=0")
	if code != 1 {
		t.Errorf("exit %d, want 1; stdout %q stderr %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, `no item has arch "=amd64"`) || !strings.Contains(stderr, "--allow-empty") {
		t.Errorf("stderr %q", stderr)
	}
	checkLeaseReleased(t, target)
	if diff := cmp.Diff(before, snapshot(t, target)); diff != "" {
		t.Errorf("the target changed (-before +after):\n%s", diff)
	}

	// --allow-empty lets it through (and, with --prune, releases what was held).
	if code, _, stderr := runRefused(t, keyring, stream, target, "arch==amd64", "--max=1", "--allow-empty"); code != 0 {
		t.Errorf("--allow-empty: exit %d: %s", code, stderr)
	}
}

// An upstream listing an item at the mirror's lock (or index) path: exit 1 naming the item and
// path, nothing written, and the target not left locked.
func TestControlPathCLI(t *testing.T) {
	for _, evil := range []string{".ssmirror/lock", "streams/v1/index.json"} {
		t.Run(evil, func(t *testing.T) {
			src := t.TempDir()
			content := "x\n"
			sum := sha256.Sum256([]byte(content))
			files := map[string]string{
				"streams/v1/index.json": `{"format": "index:1.0", "updated": "Mon, 23 Nov 2026 10:00:00 +0000", "index": {"c": {"format": "products:1.0", "path": "streams/v1/c.json", "products": ["p"]}}}`,
				"streams/v1/c.json": fmt.Sprintf(`{"format": "products:1.0", "content_id": "c", "products": {"p": {"arch": "amd64", "versions": {"1": {"items": {
					"evil": {"path": %q, "size": 2, "sha256": %q}}}}}}}`, evil, hex.EncodeToString(sum[:])),
			}
			if evil != "streams/v1/index.json" {
				files[evil] = content
			}
			for p, data := range files {
				full := filepath.Join(src, p)
				os.MkdirAll(filepath.Dir(full), 0o755)
				if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			target := filepath.Join(t.TempDir(), "mirror")
			code, _, stderr := runRefused(t, filepath.Join(src, "streams/v1/index.json"), target)
			if code != 1 {
				t.Errorf("exit %d, want 1: %s", code, stderr)
			}
			if !strings.Contains(stderr, "item evil: path "+evil) {
				t.Errorf("stderr does not name the item and path: %q", stderr)
			}
			checkLeaseReleased(t, target)
			if files := snapshot(t, target); len(files) != 0 {
				t.Errorf("files written: %v", files)
			}
		})
	}
}
