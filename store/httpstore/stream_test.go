package httpstore

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/store"
)

// Every item of a generated stream read through the store, from a server that cuts every
// third response after 1000 bytes, hashes to the catalogue's sha256.
func TestGeneratedStreamThroughFlakyServer(t *testing.T) {
	cfg := streamtest.SmallConfig()
	cfg.SquashfsSize = 50_000
	s, err := streamtest.Generate(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	h := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			w = &cutWriter{ResponseWriter: w, left: 1000}
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	st := newStore(t, srv.URL, Options{})
	for _, it := range s.Items {
		rc, err := st.Open(t.Context(), it.Path, 0)
		if err != nil {
			t.Fatal(err)
		}
		v := store.NewVerifier(it.Path, rc, store.PutOptions{Size: it.Size, SHA256: it.SHA256})
		_, err = io.Copy(io.Discard, v)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Check(); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.ContentRequests(); got <= len(s.Items) {
		t.Fatalf("%d content requests for %d items: the server never cut a response", got, len(s.Items))
	}
}

// cutWriter passes through left bytes of the body, then aborts the response (the server closes
// the connection mid-body).
type cutWriter struct {
	http.ResponseWriter
	left int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if len(p) > c.left {
		c.ResponseWriter.Write(p[:c.left])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	c.left -= len(p)
	return c.ResponseWriter.Write(p)
}
