package main

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/ssmirror/ssmirror/sync"
)

// showProgress displays p on w until the returned stop is called: on a terminal a live display
// (mpb: a bar for the whole run and one per file in flight), otherwise a plain line every
// interval. stop prints a final line.
func showProgress(p *sync.Progress, w io.Writer, interval time.Duration) (stop func()) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return liveProgress(p, w, 150*time.Millisecond)
	}
	return periodicProgress(p, w, interval)
}

// periodicProgress prints one line every interval while the transfer runs, and a last one.
func periodicProgress(p *sync.Progress, w io.Writer, interval time.Duration) func() {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return every(interval, func(final bool) {
		s := p.Snapshot()
		if (final && s.Files > 0) || (!final && s.Running) {
			fmt.Fprintln(w, progressLine(s))
		}
	})
}

// progressJSON prints the periodic progress as JSON log lines (--log-format json), never the
// terminal display.
func progressJSON(p *sync.Progress, w io.Writer, interval time.Duration) func() {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return every(interval, func(final bool) {
		s := p.Snapshot()
		if (final && s.Files > 0) || (!final && s.Running) {
			jsonProgress(w, s)
		}
	})
}

// liveProgress redraws bars every tick: the run's bytes, files, rate and ETA, and a bar per
// file being transferred, removed when it completes.
func liveProgress(p *sync.Progress, w io.Writer, tick time.Duration) func() {
	// The caller decides w is a terminal; forcing auto refresh also lets a test render into a buffer.
	container := mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(tick), mpb.WithAutoRefresh())
	var total *mpb.Bar
	var last atomic.Pointer[sync.ProgressSnapshot] // written here, read by mpb's rendering
	files := map[string]*mpb.Bar{}
	update := func(final bool) {
		s := p.Snapshot()
		last.Store(&s)
		if total == nil {
			if !s.Running && !final || s.Files == 0 {
				return
			}
			total = container.AddBar(s.Bytes,
				mpb.BarPriority(1<<30), // stays at the bottom
				mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
					l := last.Load()
					return fmt.Sprintf("%d/%d files", l.FilesDone, l.Files)
				}, decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
					l := last.Load()
					line := fmt.Sprintf("%s/%s  %s/s", humanBytes(l.BytesDone), humanBytes(l.Bytes), humanBytes(int64(l.Rate())))
					if eta := l.ETA(); eta > 0 {
						line += "  ETA " + eta.Round(time.Second).String()
					}
					return line
				})))
		}
		seen := map[string]bool{}
		for _, f := range s.Active {
			seen[f.Path] = true
			bar := files[f.Path]
			if bar == nil {
				bar = container.AddBar(f.Size, mpb.BarRemoveOnComplete(),
					mpb.PrependDecorators(decor.Name(shortPath(f.Path, 40), decor.WCSyncSpaceR)),
					mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Percentage(decor.WCSyncSpace)))
				files[f.Path] = bar
			}
			bar.SetCurrent(f.Done)
		}
		for name, bar := range files {
			if !seen[name] || final {
				bar.Abort(true) // finished (or failed): removed from the display
				delete(files, name)
			}
		}
		total.SetCurrent(s.BytesDone) // completes the bar when every byte is in
		if final {
			total.Abort(false) // a run that failed or had nothing to move: keep the last frame
		}
	}
	stopTicks := every(tick, update)
	return func() {
		stopTicks()
		if total == nil {
			container.Shutdown()
			return
		}
		container.Wait()
	}
}

// every calls f(false) every interval until the returned stop is called, which calls f(true)
// once and returns when that is done.
func every(interval time.Duration, f func(final bool)) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				f(true)
				return
			case <-t.C:
				f(false)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// shortPath keeps the end of a long path, which names the file.
func shortPath(p string, max int) string {
	if len(p) <= max {
		return p
	}
	return "…" + p[len(p)-max+1:]
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
