package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/ssmirror/ssmirror/sync"
)

// showProgress displays p on w until the returned stop is called: a live line redrawn a few times
// a second when w is a terminal, otherwise a plain line every interval. stop prints a final line.
func showProgress(p *sync.Progress, w io.Writer, interval time.Duration) (stop func()) {
	live := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		live = true
		interval = 200 * time.Millisecond
	}
	if interval <= 0 {
		interval = 10 * time.Second
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				s := p.Snapshot()
				if s.Files > 0 {
					if live {
						fmt.Fprintf(w, "\r\033[K%s\n", progressLine(s))
					} else {
						fmt.Fprintln(w, progressLine(s))
					}
				}
				return
			case <-t.C:
				s := p.Snapshot()
				if !s.Running {
					continue
				}
				if live {
					fmt.Fprintf(w, "\r\033[K%s", progressLine(s))
				} else {
					fmt.Fprintln(w, progressLine(s))
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func progressLine(s sync.ProgressSnapshot) string {
	pct := 100.0
	if s.Bytes > 0 {
		pct = float64(s.BytesDone) * 100 / float64(s.Bytes)
	}
	line := fmt.Sprintf("%d/%d files  %s/%s (%.0f%%)  %s/s", s.FilesDone, s.Files,
		humanBytes(s.BytesDone), humanBytes(s.Bytes), pct, humanBytes(int64(s.Rate())))
	if eta := s.ETA(); eta > 0 {
		line += "  ETA " + eta.Round(time.Second).String()
	}
	return line
}
