package httpstore

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/storetest"
)

// TestSourceConformance runs the read side of the store contract (reads, missing keys, invalid
// keys, bounded ranges) against an HTTP server holding storetest.SourceObjects.
func TestSourceConformance(t *testing.T) {
	storetest.RunSource(t, func(t *testing.T) store.Source {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			data, ok := storetest.SourceObjects[strings.TrimPrefix(r.URL.Path, "/mirror/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
		}))
		t.Cleanup(srv.Close)
		return newStore(t, srv.URL+"/mirror/", Options{Retries: 1})
	})
}
