package s3store_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/ssmirror/ssmirror/internal/faultproxy"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
)

// TestCompleteRetriedAfterCorruption: a middlebox that flips one byte of the body of the first
// CompleteMultipartUpload of each upload (the XML list of parts and their checksums) makes the
// server refuse it (MinIO: MalformedXML or InvalidPart; versitygw: a payload hash mismatch);
// the Complete is sent again and the upload lands intact, instead of the whole file failing
// and being uploaded again by the next run.
func TestCompleteRetriedAfterCorruption(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		var mu sync.Mutex
		seen := map[string]bool{}
		firstComplete := func(r *http.Request) bool {
			id := r.URL.Query().Get("uploadId")
			if r.Method != http.MethodPost || id == "" {
				return false
			}
			mu.Lock()
			defer mu.Unlock()
			first := !seen[id]
			seen[id] = true
			return first
		}
		p, err := faultproxy.New(e.srv.Endpoint, faultproxy.Options{
			Seed:   5,
			Faults: []faultproxy.Fault{{Kind: faultproxy.FlipRequest, Rate: 1, Filter: firstComplete}},
		})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(p)
		t.Cleanup(srv.Close)
		opts := e.opts
		opts.Endpoint = srv.URL
		client, err := s3store.NewClient(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		s := s3store.New(client, e.srv.NewBucket(t, t.Name()), "mirror/", opts)
		for i := range 6 {
			key := fmt.Sprintf("multipart-%d", i)
			data := randBytes(uint64(40+i), 2*testPartSize+1000*i+1)
			if _, err := s.Put(t.Context(), key, bytes.NewReader(data), store.PutOptions{Size: int64(len(data)), SHA256: sha(data)}); err != nil {
				t.Errorf("Put %s: %v", key, err)
				continue
			}
			if got := readBack(t, e, s, key); !bytes.Equal(got, data) {
				t.Errorf("%s: the server holds other bytes", key)
			}
		}
		if n := p.Stats().RequestFlips; n != 6 {
			t.Errorf("%d Complete bodies corrupted, want 6", n)
		}
		checkNoUploads(t, e, s)
	})
}
