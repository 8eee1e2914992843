package audit_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/sync"
	"github.com/ssmirror/ssmirror/sync/audit"
)

// A deep verify of an item whose catalogue gives only md5 (or only sha512) names that hash when
// the content differs, not sha256 (it said "sha256 mismatch" for every hash).
func TestVerifyNamesTheHashThatDiffers(t *testing.T) {
	for h, kind := range map[string]audit.ProblemKind{"md5": audit.ProblemMD5, "sha512": audit.ProblemSHA512, "sha256": audit.ProblemSHA256} {
		t.Run(h, func(t *testing.T) {
			const p = "noble/amd64/squashfs"
			src := hostileUpstream(t, map[string]string{"squashfs": p}, h)
			dir, dst := newTarget(t)
			if _, err := sync.Run(t.Context(), src, dst, sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}}); err != nil {
				t.Fatal(err)
			}
			full := filepath.Join(dir, p)
			data, err := os.ReadFile(full)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(strings.Repeat("X", len(data))), 0o644); err != nil {
				t.Fatal(err)
			}
			rep := verify(t, dst, audit.VerifyOptions{StartPath: "streams/v1/index.json", Deep: true})
			wantOnly(t, rep, p, kind)
			if d := rep.Problems[0].Detail; !strings.Contains(d, h+" ") {
				t.Errorf("detail %q does not name %s", d, h)
			}
		})
	}
}
