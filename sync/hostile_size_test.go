package sync_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

// TestHostileSizeIntoS3: an item whose declared size is beyond anything S3 stores (9e18 bytes,
// and 6 TiB) makes the run fail naming the item, without a panic (s3store once died in
// makeslice) and without allocating for it; the lock is released and nothing is published.
func TestHostileSizeIntoS3(t *testing.T) {
	for _, size := range []string{"9000000000000000000", fmt.Sprint(int64(6) << 40)} {
		t.Run(size, func(t *testing.T) {
			up := newUpstream(t, smallConfig("20250718"), nil)
			var victim string
			for _, it := range up.stream.Items {
				if strings.HasPrefix(it.Path, "noble/amd64/") && strings.HasSuffix(it.Path, "/boot-kernel") {
					victim = it.Path
					break
				}
			}
			// Rewrite the victim's size in the unsigned products file, and start from the
			// unsigned index.
			sizeField := regexp.MustCompile(`("path":\s*"` + regexp.QuoteMeta(victim) + `"[^}]*?"size":\s*)\d+|("size":\s*)\d+([^{}]*?"path":\s*"` + regexp.QuoteMeta(victim) + `")`)
			changed := 0
			for p, data := range up.stream.Files {
				if strings.HasSuffix(p, ".sjson") || strings.HasSuffix(p, ".gpg") {
					delete(up.stream.Files, p) // an unsigned stream
					continue
				}
				if !strings.HasSuffix(p, ".json") || strings.HasSuffix(p, "index.json") {
					continue
				}
				out := sizeField.ReplaceAllFunc(data, func(m []byte) []byte {
					changed++
					sm := sizeField.FindSubmatch(m)
					if len(sm[1]) > 0 {
						return []byte(string(sm[1]) + size)
					}
					return []byte(string(sm[2]) + size + string(sm[3]))
				})
				up.stream.Files[p] = out
			}
			if changed != 1 {
				t.Fatalf("rewrote %d sizes of %s, want 1", changed, victim)
			}
			e := newS3Target(t, testserver.KindMinIO)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			_, err := sync.Run(ctx, up.src, e.dst, sync.Options{
				Selection: sync.Selection{Filters: mustParse(t, "release=noble", "arch=amd64"), Max: 1, StartPath: "streams/v1/index.json", Verification: sync.Verification{NoVerify: true}},
			})
			if err == nil || !strings.Contains(err.Error(), victim) {
				t.Fatalf("sync with a declared size of %s bytes = %v, want an error naming %s", size, err, victim)
			}
			t.Logf("error: %v", err)
			checkReleased(t, e.dst)
			if _, err := e.dst.Stat(t.Context(), "streams/v1/index.json"); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("index published after the failed run: %v", err)
			}
		})
	}
}
