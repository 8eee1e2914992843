package sync_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/faultproxy"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
	"github.com/ssmirror/ssmirror/sync/audit"
)

// notLock keeps the lock's own requests out of the faults: a lock this test process left
// behind is (rightly) not taken over while the process lives.
func notLock(r *http.Request) bool { return !strings.Contains(r.URL.Path, "/.ssmirror/lock") }

// TestCorruptionBothWays: successive runs (changing selections, pruning, collecting at once)
// through a proxy that flips a byte in 30% of PUT and POST bodies (content, parts, multipart
// Complete, metadata, state) and of GET answers (content checks, the listing, the state) leave
// no corrupt object in the bucket after any run, whatever each run's outcome; a clean run then
// leaves a mirror that a deep verify passes.
func TestCorruptionBothWays(t *testing.T) {
	up := newUpstream(t, faultConfig(), nil)
	catalogue := map[string]string{}
	for _, it := range up.stream.Items {
		catalogue[it.Path] = it.SHA256
	}
	targettest.Each(t, targettest.S3, targettest.Options{Parallel: true}, func(t *testing.T, kind targettest.Kind) {
		e := newS3Target(t, testserver.Kind(kind))
		for i := range 6 {
			uploadID := regexp.MustCompile(`uploadId=[^&]*`)
			p, proxyURL := startProxy(t, e.srv.Endpoint, faultproxy.Options{
				Seed: uint64(7 + i),
				Faults: []faultproxy.Fault{
					{Kind: faultproxy.FlipRequest, Rate: 0.3, Methods: []string{http.MethodPut, http.MethodPost}, Filter: notLock},
					{Kind: faultproxy.Flip, Rate: 0.3, Methods: []string{http.MethodGet}, Filter: notLock},
				},
				Key: func(r *http.Request) string {
					_, path, _ := strings.Cut(strings.TrimPrefix(r.URL.RequestURI(), "/"), "/")
					return r.Method + " " + uploadID.ReplaceAllString(path, "")
				},
			})
			opts := s3store.Options{Endpoint: proxyURL, PartSize: s3store.MinPartSize, PartConcurrency: 2}
			client := targettest.Client(t, e.srv, &opts)
			dst := s3store.New(client, e.bucket, "maas/stable/", opts)
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			filters := []string{"release~(jammy|noble)"}
			if i%2 == 1 {
				filters = []string{"release=noble"}
			}
			rep, runErr := sync.Run(ctx, up.src, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Prune: i%2 == 1, Verification: sync.Verification{Keyring: up.keyring}}, Publishing: sync.Publishing{GCGrace: time.Nanosecond}})
			cancel()
			bad := checkEveryObject(t, e, up.stream.Files, catalogue)
			var fetched int
			if rep != nil {
				fetched = rep.Fetched
			}
			t.Logf("run %d: faults %v, fetched %d, corrupt objects %d, run error: %v", i, p.Stats().Faults, fetched, bad, runErr)
		}
		// a clean run, then a deep verify
		rep := run(t, up, e.dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "release~(jammy|noble)"), Max: 1}})
		t.Logf("clean run: fetched %d, adopted %d, drifted %v, metadata %v", rep.Fetched, rep.Adopted, rep.Drifted, rep.MetadataWritten)
		checkEveryObject(t, e, up.stream.Files, catalogue)
		vr, err := audit.Verify(t.Context(), e.dst, audit.VerifyOptions{Deep: true, Keyring: up.keyring})
		if err != nil {
			t.Fatal(err)
		}
		if len(vr.Problems) > 0 {
			t.Errorf("verify: %+v", vr.Problems)
		}
	})
}
