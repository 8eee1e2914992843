package sync_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	gosync "sync"
	"testing"

	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/sync"
)

// TestLargestFilesFirst: files are fetched largest first, so the files in flight at once end
// close together instead of a large file found last running alone at the end. With one file at
// a time, the upstream sees the content requests in order of decreasing size.
func TestLargestFilesFirst(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	var mu gosync.Mutex
	var order []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		if _, ok := up.stream.Content[p]; ok {
			mu.Lock()
			order = append(order, p)
			mu.Unlock()
		}
		up.stream.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	src, err := httpstore.New(srv.Client(), srv.URL+"/", httpstore.Options{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, dst := newTarget(t)
	opts := sync.Options{Concurrency: 1, RangeStreams: 1, Verification: sync.Verification{Keyring: up.keyring}}
	if _, err := sync.Run(t.Context(), src, dst, opts); err != nil {
		t.Fatal(err)
	}
	if len(order) < 3 {
		t.Fatalf("only %d content requests", len(order))
	}
	for i := 1; i < len(order); i++ {
		if a, b := up.stream.Content[order[i-1]], up.stream.Content[order[i]]; a < b {
			t.Errorf("%s (%d bytes) fetched before %s (%d bytes)", order[i-1], a, order[i], b)
		}
	}
}
