package s3store_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
)

// TestBufferBudgetSharedByConcurrentPuts: six multipart uploads at once through one Store whose
// budget holds only two parts all complete (no Put waits forever for a buffer) and land intact.
func TestBufferBudgetSharedByConcurrentPuts(t *testing.T) {
	e := newEnv(t, testserver.KindMinIO)
	opts := e.opts
	opts.BufferBudget = 2 * testPartSize
	client, err := s3store.NewClient(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	s := s3store.New(client, e.srv.NewBucket(t, t.Name()), "mirror/", opts)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	data := make([][]byte, 6)
	for i := range data {
		data[i] = randBytes(uint64(i+1), 3*testPartSize+1000*i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Put(t.Context(), fmt.Sprintf("f%d", i), bytes.NewReader(data[i]),
				store.PutOptions{Size: int64(len(data[i])), SHA256: sha(data[i])})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		got, err := store.ReadAll(t.Context(), s, fmt.Sprintf("f%d", i), 0)
		if err != nil || !bytes.Equal(got, data[i]) {
			t.Errorf("f%d did not land intact (err %v)", i, err)
		}
	}
	checkNoUploads(t, e, s)
}
