package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

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

// periodicProgress prints one line every interval while the transfer runs or the run
// publishes, and a last one.
func periodicProgress(p *sync.Progress, w io.Writer, interval time.Duration) func() {
	return everyProgress(p, interval, func(v progressView) { fmt.Fprintln(w, progressLine(v)) })
}

// progressJSON prints the periodic progress as JSON log lines (--log-format json), never the
// terminal display.
func progressJSON(p *sync.Progress, w io.Writer, interval time.Duration) func() {
	return everyProgress(p, interval, func(v progressView) { jsonProgress(w, v) })
}

// everyProgress calls show with the run's progress every interval (default 10s) while the
// transfer runs or the run publishes, and once at the end when there was anything to do.
func everyProgress(p *sync.Progress, interval time.Duration, show func(progressView)) func() {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	var tr tracker
	return every(interval, func(final bool) {
		s := p.Snapshot()
		v := tr.observe(s)
		if (final && s.Files > 0) || (!final && (s.Running || s.Phase == sync.PhasePublish && s.Files > 0)) {
			show(v)
		}
	})
}

// The terminal display's columns, fixed so that nothing moves from one frame to the next and
// every line fits 80 columns: a name (a file's path, or the run's file count or phase), the
// bar, the bytes, then the run's rate and ETA or a file's percentage.
const (
	nameWidth = 24
	barWidth  = 12
)

// liveProgress redraws bars every tick: the run's bytes, files, rate and ETA (or the phase it
// is in once the transfer is over), and a bar per file being transferred, removed when it
// completes.
func liveProgress(p *sync.Progress, w io.Writer, tick time.Duration) func() {
	return liveProgressOf(p.Snapshot, w, tick)
}

func liveProgressOf(snapshot func() sync.ProgressSnapshot, w io.Writer, tick time.Duration) func() {
	// The caller decides w is a terminal; forcing auto refresh also lets a test render into a
	// buffer. mpb takes the terminal's width, or WithWidth's when it has none (a test's buffer).
	container := mpb.New(mpb.WithOutput(w), mpb.WithWidth(80), mpb.WithRefreshRate(tick), mpb.WithAutoRefresh())
	var total *mpb.Bar
	var last atomic.Pointer[progressView] // written here, read by mpb's rendering
	var tr tracker
	files := map[string]*mpb.Bar{}
	update := func(final bool) {
		s := snapshot()
		v := tr.observe(s)
		if final {
			v.Phase = "" // the last frame gives the run's totals
		}
		last.Store(&v)
		if total == nil {
			if !s.Running && !final || s.Files == 0 {
				return
			}
			// A total of 0 is one mpb completes only when told: the bar stays through the
			// publishing phase, which comes after the last byte.
			total = container.AddBar(0, mpb.BarWidth(barWidth),
				mpb.BarPriority(1<<30), // stays at the bottom
				mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
					l := last.Load()
					name := fmt.Sprintf("%d/%d files", l.FilesDone, l.Files)
					if l.Phase == sync.PhasePublish || l.Phase == sync.PhaseCleanUp {
						name = l.Phase
					}
					return fitLeft(name, nameWidth) // mpb puts one blank between a decorator and the bar
				})),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
					l := last.Load()
					return bytesColumn(l.BytesDone, l.Bytes) + "  " + fitRight(compactBytes(int64(l.Rate))+"/s", 9) + "  " + etaColumn(l.ETA)
				})))
			total.SetTotal(max(s.Bytes, 1), false)
		}
		seen := map[string]bool{}
		for _, f := range v.Active {
			seen[f.Path] = true
			bar := files[f.Path]
			if bar == nil {
				size := f.Size
				bar = container.AddBar(max(size, 1), mpb.BarWidth(barWidth), mpb.BarRemoveOnComplete(),
					mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return fitLeft(f.Path, nameWidth) })),
					mpb.AppendDecorators(decor.Any(func(st decor.Statistics) string {
						pct := 100
						if size > 0 {
							pct = int(st.Current * 100 / size)
						}
						return bytesColumn(st.Current, size) + "  " + fitRight(fmt.Sprintf("%d%%", pct), 9)
					})))
				files[f.Path] = bar
			}
			if f.Done < f.Size || f.Size == 0 {
				bar.SetCurrent(f.Done) // a finished file's bar goes when the file leaves the run
			}
		}
		for name, bar := range files {
			if !seen[name] || final {
				bar.Abort(true) // finished (or failed): removed from the display
				delete(files, name)
			}
		}
		total.SetCurrent(min(v.BytesDone, max(s.Bytes, 1)))
		if final {
			total.SetTotal(-1, true) // keep the last frame, as it is
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

// progressView is a snapshot as the display shows it: its counts never go back (a failed
// attempt's bytes, which the run takes back, stay shown until the retry has passed them), and
// its rate is the rate of the last rateWindow, which the ETA follows.
type progressView struct {
	sync.ProgressSnapshot
	Rate float64
	ETA  time.Duration
}

// rateWindow is how far back the display's rate looks: long enough to smooth the bursts of
// parallel transfers, short enough that the ETA follows the rate of the last files.
const rateWindow = 10 * time.Second

type sample struct {
	at    time.Duration // the run's elapsed time
	bytes int64
}

// tracker turns successive snapshots into views. The zero value is ready.
type tracker struct {
	files, bytes int64
	fileDone     map[string]int64
	samples      []sample
}

func (t *tracker) observe(s sync.ProgressSnapshot) progressView {
	t.files = max(t.files, s.FilesDone)
	t.bytes = max(t.bytes, s.BytesDone)
	s.FilesDone, s.BytesDone = t.files, t.bytes
	seen := map[string]int64{}
	active := make([]sync.FileProgress, len(s.Active))
	for i, f := range s.Active {
		f.Done = max(f.Done, t.fileDone[f.Path])
		seen[f.Path] = f.Done
		active[i] = f
	}
	s.Active, t.fileDone = active, seen

	v := progressView{ProgressSnapshot: s}
	if len(t.samples) == 0 || s.Elapsed > t.samples[len(t.samples)-1].at {
		t.samples = append(t.samples, sample{s.Elapsed, t.bytes})
	}
	// Keep the newest sample at or before the window's start, and those after it.
	cut := 0
	for i, smp := range t.samples {
		if s.Elapsed-smp.at >= rateWindow {
			cut = i
		}
	}
	t.samples = t.samples[cut:]
	first, lastS := t.samples[0], t.samples[len(t.samples)-1]
	switch span := lastS.at - first.at; {
	case span >= time.Second:
		v.Rate = float64(lastS.bytes-first.bytes) / span.Seconds()
	default:
		v.Rate = s.Rate() // the first second: the mean so far
	}
	if v.Rate > 0 && s.BytesDone < s.Bytes {
		v.ETA = time.Duration(float64(s.Bytes-s.BytesDone) / v.Rate * float64(time.Second))
	}
	return v
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
	r := []rune(p)
	if len(r) <= max {
		return p
	}
	return "…" + string(r[len(r)-max+1:])
}

// fitLeft and fitRight pad s with blanks to width runes (cutting its start when longer).
func fitLeft(s string, width int) string {
	s = shortPath(s, width)
	return s + strings.Repeat(" ", width-utf8.RuneCountInString(s))
}

func fitRight(s string, width int) string {
	s = shortPath(s, width)
	return strings.Repeat(" ", width-utf8.RuneCountInString(s)) + s
}

// compactBytes is n in at most 7 characters: 1023B, 1.5K, 999.9M, 12.3G (powers of 1024).
func compactBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	f, u := float64(n), 0
	for f >= 1024 && u < 5 {
		f /= 1024
		u++
	}
	if f >= 999.95 { // 1023.9K would be 7 characters plus the unit; say 1.0M
		if u < 5 {
			f /= 1024
			u++
		}
	}
	return fmt.Sprintf("%.1f%c", f, "BKMGTP"[u])
}

// bytesColumn is "done/total", 15 characters.
func bytesColumn(done, total int64) string {
	return fitRight(compactBytes(done), 7) + "/" + fitLeft(compactBytes(total), 7)
}

// etaColumn is "ETA h:mm:ss" (or blanks when unknown), 12 characters.
func etaColumn(eta time.Duration) string {
	if eta <= 0 {
		return strings.Repeat(" ", 12)
	}
	sec := int64(eta.Round(time.Second) / time.Second)
	return fitRight(fmt.Sprintf("ETA %d:%02d:%02d", sec/3600, sec/60%60, sec%60), 12)
}

func progressLine(v progressView) string {
	s := v.ProgressSnapshot
	pct := 100.0
	if s.Bytes > 0 {
		pct = float64(s.BytesDone) * 100 / float64(s.Bytes)
	}
	line := fmt.Sprintf("%d/%d files  %s/%s (%.0f%%)  %s/s", s.FilesDone, s.Files,
		humanBytes(s.BytesDone), humanBytes(s.Bytes), pct, humanBytes(int64(v.Rate)))
	if v.ETA > 0 {
		line += "  ETA " + v.ETA.Round(time.Second).String()
	}
	if s.Phase == sync.PhasePublish {
		line += "  publishing"
	}
	return line
}

// jsonProgress prints the periodic progress line as a JSON log line: the rate of the last
// seconds and the ETA at that rate, as the terminal display shows them.
func jsonProgress(w io.Writer, v progressView) {
	s := v.ProgressSnapshot
	attrs := []any{"files_done", s.FilesDone, "files", s.Files, "bytes_done", s.BytesDone, "bytes", s.Bytes, "bytes_per_second", int64(v.Rate)}
	if v.ETA > 0 {
		attrs = append(attrs, "eta_seconds", v.ETA.Round(time.Second).Seconds())
	}
	if s.Phase != "" {
		attrs = append(attrs, "phase", s.Phase)
	}
	w.Write(jsonLogLine("INFO", "progress", attrs...))
}
