package sync_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/ssmirror/ssmirror/internal/mirrortest"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

// sameContentTwice writes an unsigned stream whose two items have different paths and the same
// content (MAAS streams have such pairs), and returns it as a source.
func sameContentTwice(t *testing.T) store.Source {
	t.Helper()
	content := []byte("identical bytes under two paths\n")
	sum := sha256.Sum256(content)
	hexsum := hex.EncodeToString(sum[:])
	files := map[string]string{
		"streams/v1/index.json": `{"format": "index:1.0", "updated": "Mon, 23 Nov 2026 10:00:00 +0000", "index": {"c": {"format": "products:1.0", "path": "streams/v1/c.json", "products": ["p"]}}}`,
		"streams/v1/c.json": fmt.Sprintf(`{"format": "products:1.0", "content_id": "c", "products": {"p": {"arch": "amd64", "versions": {"1": {"items": {
			"a": {"path": "one/file", "size": %d, "sha256": "%s"},
			"b": {"path": "two/file", "size": %d, "sha256": "%s"}}}}}}}`, len(content), hexsum, len(content), hexsum),
		"one/file": string(content),
		"two/file": string(content),
	}
	return mirrortest.DirSource(t, files)
}

func TestSameContentIsCopiedInsideTheTarget(t *testing.T) {
	targettest.Run(t, []targettest.Kind{targettest.Directory, targettest.MinIO}, targettest.Options{Parallel: true}, func(t *testing.T, tg *targettest.Target) {
		src := sameContentTwice(t)
		dst := tg.Store
		rep, err := sync.Run(t.Context(), src, dst, sync.Options{Selection: sync.Selection{StartPath: "streams/v1/index.json"}, Tuning: sync.Tuning{Concurrency: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Fetched != 1 || rep.Copied != 1 {
			t.Errorf("fetched %d, copied %d; want the first fetched and the second copied in the target", rep.Fetched, rep.Copied)
		}
		for _, p := range []string{"one/file", "two/file"} {
			info, err := dst.Stat(t.Context(), p)
			if err != nil || info.Size != 32 {
				t.Errorf("%s: %+v %v", p, info, err)
			}
		}
	})
}
