package sync

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// TestTeeMemoryBound: a reader that stops reading is given up on once it is more than the budget
// behind the fastest, the others get every byte, and the chunks held never exceed the budget
// plus the read-ahead, whatever the number of readers.
func TestTeeMemoryBound(t *testing.T) {
	const budget, readAhead = 1 << 20, 512 << 10
	data := bytes.Repeat([]byte("0123456789abcdef"), (8<<20)/16)
	for _, readers := range []int{2, 5} {
		tee := newTee(readers, budget, readAhead)
		tee.patience = 200 * time.Millisecond // the reader that never reads is waited for that long
		held := int64(0)
		maxHeld := int64(0)
		// The most bytes queued for any reader: the chunks are shared, so this is what is held.
		watch := func() {
			tee.mu.Lock()
			defer tee.mu.Unlock()
			held = 0
			for _, o := range tee.outs {
				held = max(held, o.queued)
			}
			maxHeld = max(maxHeld, held)
		}
		got := make([][]byte, readers)
		errs := make([]error, readers)
		done := make(chan int, readers)
		for i := 1; i < readers; i++ { // reader 0 never reads
			go func() {
				var b bytes.Buffer
				buf := make([]byte, 32<<10)
				for {
					n, err := tee.outs[i].Read(buf)
					b.Write(buf[:n])
					watch()
					if err != nil {
						if err != io.EOF {
							errs[i] = err
						}
						break
					}
				}
				got[i] = b.Bytes()
				tee.outs[i].close()
				done <- i
			}()
		}
		v := store.NewVerifier("k", bytes.NewReader(data), store.PutOptions{Size: int64(len(data))})
		if err := tee.pump(v); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < readers; i++ {
			<-done
		}
		if !tee.outs[0].fellBehind {
			t.Errorf("%d readers: the reader that never read was not given up on", readers)
		}
		if _, err := tee.outs[0].Read(make([]byte, 1)); !errors.Is(err, ErrFellBehind) {
			t.Errorf("%d readers: the reader given up on reads %v", readers, err)
		}
		for i := 1; i < readers; i++ {
			if errs[i] != nil || !bytes.Equal(got[i], data) {
				t.Errorf("%d readers: reader %d got %d bytes, error %v", readers, i, len(got[i]), errs[i])
			}
		}
		if limit := int64(budget + readAhead + teeChunk); maxHeld > limit {
			t.Errorf("%d readers: %d bytes held at once, more than %d", readers, maxHeld, limit)
		}
	}
}
