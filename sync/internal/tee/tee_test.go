package tee

import (
	"bytes"
	"errors"
	"io"
	gosync "sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// TestTeeMemoryBound: a reader that stops reading is given up on once it holds the stream back
// for the patience, the others get every byte, and the chunks alive never exceed the tee's
// limit, whatever the number of readers.
func TestTeeMemoryBound(t *testing.T) {
	const limit = 1 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), (8<<20)/16)
	for _, readers := range []int{2, 5} {
		synctest.Test(t, func(t *testing.T) {
			tee := newTee(readers, limit, nil)
			tee.patience = 200 * time.Millisecond // the reader that never reads is waited for that long
			var maxAlive int64
			watch := func() {
				tee.mu.Lock()
				defer tee.mu.Unlock()
				maxAlive = max(maxAlive, tee.alive)
			}
			got := make([][]byte, readers)
			errs := make([]error, readers)
			var wg gosync.WaitGroup
			for i := 1; i < readers; i++ { // reader 0 never reads
				wg.Go(func() {
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
				})
			}
			v := store.NewVerifier("k", bytes.NewReader(data), store.PutOptions{Size: int64(len(data))})
			if err := tee.pump(v); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
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
			if maxAlive > limit {
				t.Errorf("%d readers: %d bytes of chunks alive at once, more than %d", readers, maxAlive, limit)
			}
		})
	}
}

// partReader reads a tee's reader as an S3 Put does: it builds parts of partSize bytes from the
// chunks (ReadChunk), sends each on its own (an upload that takes sendTime) with at most
// inFlight parts sent at once (as s3store's PartConcurrency), and releases a part's chunks once
// it has been sent. It returns what it sent, in order.
func partReader(o *teeOut, partSize int, inFlight int, sendTime time.Duration) ([]byte, error) {
	var (
		out   bytes.Buffer
		slots = make(chan struct{}, inFlight)
		wg    gosync.WaitGroup
	)
	defer wg.Wait()
	for {
		var (
			part     [][]byte
			releases []func()
			n        int
			err      error
		)
		for n < partSize {
			var data []byte
			var release func()
			data, release, err = o.ReadChunk()
			if err != nil {
				break
			}
			part, releases = append(part, data), append(releases, release)
			n += len(data)
		}
		for _, p := range part {
			out.Write(p)
		}
		if n > 0 {
			slots <- struct{}{}
			wg.Go(func() {
				time.Sleep(sendTime)
				for _, r := range releases {
					r()
				}
				<-slots
			})
		}
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

// TestTeeBudgetNoDeadlock: many files share one small tee budget (room for two files) and are
// written each into two S3-like readers that hold whole parts of chunks while they send them,
// and a directory-like one that copies. Every file is admitted in turn and every reader gets
// every byte: no reader is given up on and nothing waits forever. (With readers that copied
// into part buffers of a budget of their store, shared by every file, and the tee budget shared
// by the files, a Put holding a half-filled part could wait on its tee while the tee waited for
// a reader that waited for a part buffer: the cycle this design has no room for.)
func TestTeeBudgetNoDeadlock(t *testing.T) {
	for range 10 { // the order the goroutines run in varies: a cycle would show in some
		synctest.Test(t, testTeeBudgetNoDeadlock)
	}
}

func testTeeBudgetNoDeadlock(t *testing.T) {
	const (
		files    = 6
		partSize = 4 * Chunk
		fileSize = 5*partSize + 12345
	)
	hold := int64(partSize)
	reservation := Reservation(fileSize, 0, hold)
	budget := NewBudget(2 * reservation)
	var wg gosync.WaitGroup
	for f := range files {
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte(f)}, fileSize)
			got, err := budget.Reserve(t.Context(), reservation)
			if err != nil {
				t.Error(err)
				return
			}
			defer budget.Release(got)
			tee := newTee(3, got, budget)
			tee.patience = 5 * time.Second
			outs := make([][]byte, 3)
			errs := make([]error, 3)
			var rw gosync.WaitGroup
			for i := range 2 {
				rw.Go(func() {
					outs[i], errs[i] = partReader(tee.outs[i], partSize, 2, time.Duration(10*(i+1))*time.Millisecond)
					tee.outs[i].close()
				})
			}
			rw.Go(func() {
				outs[2], errs[2] = io.ReadAll(tee.outs[2])
				tee.outs[2].close()
			})
			v := store.NewVerifier("k", bytes.NewReader(data), store.PutOptions{Size: fileSize})
			if err := tee.pump(v); err != nil {
				t.Errorf("file %d: %v", f, err)
			}
			rw.Wait()
			for i := range 3 {
				if errs[i] != nil || !bytes.Equal(outs[i], data) {
					t.Errorf("file %d reader %d: %d bytes, error %v (given up on: %v)", f, i, len(outs[i]), errs[i], tee.outs[i].fellBehind)
				}
			}
			tee.mu.Lock()
			if tee.alive != 0 {
				t.Errorf("file %d: %d bytes of chunks alive after every reader closed", f, tee.alive)
			}
			tee.mu.Unlock()
		})
	}
	wg.Wait()
	if !budget.sem.TryAcquire(budget.size) {
		t.Error("the budget is not whole again after every file")
	}
}

// TestTeeReservation: a file's share is the budget's share, but at least what a reader must hold
// to send a part plus two chunks, and never more than the file's own chunks.
func TestTeeReservation(t *testing.T) {
	for _, c := range []struct{ size, share, hold, want int64 }{
		{100 << 20, 16 << 20, 8 << 20, 16 << 20},
		{100 << 20, 4 << 20, 8 << 20, 8<<20 + 2*Chunk},
		{1000, 16 << 20, 8 << 20, Chunk},
		{0, 16 << 20, 0, Chunk},
		{3 * Chunk, 16 << 20, 0, 3 * Chunk},
	} {
		if got := Reservation(c.size, c.share, c.hold); got != c.want {
			t.Errorf("Reservation(%d, %d, %d) = %d, want %d", c.size, c.share, c.hold, got, c.want)
		}
	}
}

// writer reads o as a directory's Put does, one chunk at a time, taking perChunk to write each
// (its disk), and returns what it read.
func writer(o *teeOut, perChunk time.Duration) ([]byte, error) {
	var b bytes.Buffer
	buf := make([]byte, Chunk)
	for {
		n, err := o.Read(buf)
		b.Write(buf[:n])
		if n > 0 {
			time.Sleep(perChunk)
		}
		if err == io.EOF {
			return b.Bytes(), nil
		}
		if err != nil {
			return b.Bytes(), err
		}
	}
}

// TestTeeStalledPartGivenUp: a reader that took a part's worth of chunks and then stalls (an
// upload that never answers) while the other reader waits for data is given up on after the
// patience plus the part's bytes at the minimum rate, its chunks no longer count against the
// file, and the other gets every byte. So is one that trickles below the minimum rate (it
// answers a part now and then, so it keeps moving, which a stall rule alone never gave up on:
// issue 24, fault 3). A reader that keeps up the minimum rate is waited for, however much
// faster the other is and however long the file takes (issue 21: a site on a slow, steady
// link was given up on at its first part, every run, beside a directory).
func TestTeeStalledPartGivenUp(t *testing.T) {
	type slowCase struct {
		name     string
		partSize int           // the slow reader's parts (0: it reads, copying, as a directory does)
		limit    int64         // the file's reservation
		size     int           // the file
		perChunk time.Duration // the other reader's time to write a chunk
		partTime time.Duration // the slow reader's time to send a part (0: it stalls)
		slowRead time.Duration // with partSize 0: the slow reader's time to write a chunk
		inFlight int           // the slow reader's parts in flight at once (0: 1)
		minRate  int64         // 0: DefaultMinRate
		givenUp  bool
	}
	for _, c := range []slowCase{
		{name: "stalled", partSize: 4 * Chunk, limit: 6 * Chunk, size: 12 * Chunk, perChunk: time.Millisecond, givenUp: true},
		// 256 KiB/s (a 4 MiB part every 16 s) against 256 MiB/s, with 1 MiB/s the slowest a
		// file may come at: given up on.
		{name: "trickle", partSize: 16 * Chunk, limit: 32 * Chunk, size: 48 * Chunk, perChunk: time.Millisecond,
			partTime: 16 * time.Second, minRate: 1 << 20, givenUp: true},
		// The same with the whole file in the reservation: the stream never waits for room,
		// but the other's outcome (its publish) waits for the file's end (tee.linger).
		{name: "trickle, whole file held", partSize: 16 * Chunk, limit: 64 * Chunk, size: 48 * Chunk, perChunk: time.Millisecond,
			partTime: 16 * time.Second, minRate: 1 << 20, givenUp: true},
		// The trickle with the default minimum rate (64 KiB/s), which it keeps up: waited for.
		{name: "trickle above the minimum rate", partSize: 16 * Chunk, limit: 32 * Chunk, size: 48 * Chunk, perChunk: time.Millisecond,
			partTime: 16 * time.Second},
		// 1 MiB/s against 10 MiB/s, 8 s of holding the other back in all: waited for.
		{name: "slower", partSize: 4 * Chunk, limit: 6 * Chunk, size: 32 * Chunk, perChunk: 25 * time.Millisecond, partTime: time.Second},
		// A site on a steady link of 1 MiB/s beside a directory at 256 MiB/s: an 8 MiB part
		// every 8 s, two in flight. It writes nothing for the first 8 s, then 1/256 of what the
		// other could: waited for.
		{name: "steady slow site", partSize: 32 * Chunk, limit: 66 * Chunk, size: 128 * Chunk, perChunk: time.Millisecond,
			partTime: 8 * time.Second, inFlight: 2},
		// Its two parts in flight never answered (a server stopped with SIGSTOP), it waits for
		// the chunks of its third while they hold the file's room: given up on (nobody was
		// charged, as it waited for data too, and the whole run hung).
		{name: "parts stuck while it waits for the next", partSize: 4 * Chunk, limit: 10 * Chunk, size: 40 * Chunk,
			perChunk: time.Millisecond, partTime: time.Hour, inFlight: 2, givenUp: true},
		// A slow directory (1 MiB/s, read by copying: it lags by its queue) beside a fast one
		// for 8 s: waited for.
		{name: "steady slow copy", limit: 6 * Chunk, size: 32 * Chunk, perChunk: time.Millisecond, slowRead: 250 * time.Millisecond},
		// The same at 128 KiB/s with 1 MiB/s the slowest a file may come at: given up on.
		{name: "trickling copy", limit: 6 * Chunk, size: 32 * Chunk, perChunk: time.Millisecond, slowRead: 2 * time.Second,
			minRate: 1 << 20, givenUp: true},
	} {
		synctest.Test(t, func(t *testing.T) {
			partSize := c.partSize
			data := bytes.Repeat([]byte("x"), c.size)
			tee := newTee(2, c.limit, nil)
			tee.patience = 5 * time.Second
			if c.minRate > 0 {
				tee.minRate = c.minRate
			}
			begin := time.Now()
			stop := make(chan struct{})
			var reader, slow gosync.WaitGroup
			var got []byte
			var gotErr, slowErr error
			var took time.Duration
			reader.Go(func() {
				got, gotErr = writer(tee.outs[0], c.perChunk)
				took = time.Since(begin)
				tee.outs[0].close()
			})
			slow.Go(func() {
				switch {
				case partSize == 0:
					_, slowErr = writer(tee.outs[1], c.slowRead)
				case c.partTime == 0:
					var releases []func()
					for n := 0; n < partSize; {
						d, release, err := tee.outs[1].ReadChunk()
						if err != nil {
							slowErr = err
							break
						}
						n += len(d)
						releases = append(releases, release)
					}
					<-stop // the upload never answers, until the test ends
					for _, r := range releases {
						r()
					}
				default:
					_, slowErr = partReader(tee.outs[1], partSize, max(c.inFlight, 1), c.partTime)
				}
				tee.outs[1].close()
			})
			v := store.NewVerifier("k", bytes.NewReader(data), store.PutOptions{Size: int64(len(data))})
			if err := tee.pump(v); err != nil {
				t.Fatal(err)
			}
			tee.linger() // as Stream does
			reader.Wait()
			close(stop) // the stalled upload ends with the test
			slow.Wait()
			if gotErr != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: the other reader got %d bytes, error %v", c.name, len(got), gotErr)
			}
			if tee.outs[1].fellBehind != c.givenUp {
				t.Errorf("%s: given up on: %v (its error %v)", c.name, tee.outs[1].fellBehind, slowErr)
			}
			if !c.givenUp && slowErr != nil {
				t.Errorf("%s: the slow reader failed: %v", c.name, slowErr)
			}
			// Given up on, it held the other back for the patience plus what it took (at most
			// the reservation) at the minimum rate at most, plus the other's own writing.
			bound := tee.patience + tee.atMinRate(c.limit) +
				time.Duration(len(data)/Chunk)*c.perChunk + time.Second
			if c.givenUp && took > bound {
				t.Errorf("%s: the other reader was done after %v, more than %v", c.name, took, bound)
			}
			t.Logf("%s: the other reader was done after %v", c.name, took)
		})
	}
}
