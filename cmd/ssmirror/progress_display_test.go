package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ssmirror/ssmirror/sync"
)

// script plays snapshots to the display, each for a few calls (so that mpb draws every one),
// then repeats the last; done is closed once the last has been shown a few times.
type script struct {
	mu    gosync.Mutex
	snaps []sync.ProgressSnapshot
	calls int
	done  chan struct{}
}

func (s *script) next() sync.ProgressSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	const repeat = 4
	i := min(s.calls/repeat, len(s.snaps)-1)
	s.calls++
	if s.calls == repeat*(len(s.snaps)+1) {
		close(s.done)
	}
	return s.snaps[i]
}

// runScript renders snaps through the terminal display into a buffer and returns its lines,
// escape sequences removed.
func runScript(t *testing.T, snaps []sync.ProgressSnapshot) []string {
	t.Helper()
	sc := &script{snaps: snaps, done: make(chan struct{})}
	var out bytes.Buffer
	stop := liveProgressOf(sc.next, &out, 5*time.Millisecond)
	select {
	case <-sc.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the display did not go through the script")
	}
	stop()
	var lines []string
	for _, l := range strings.Split(ansi.ReplaceAllString(out.String(), ""), "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// A run of two large files: a retry takes bytes back, the transfer ends, metadata is published.
func runOfTwoFiles() []sync.ProgressSnapshot {
	const gib = 1 << 30
	path := "noble/amd64/20250718/squashfs"
	long := "jammy/arm64/20250718/hwe-22.04-lowlatency-edge/boot-initrd"
	snap := func(sec int, done, f1, f2 int64, filesDone int64, phase string) sync.ProgressSnapshot {
		s := sync.ProgressSnapshot{Files: 1234, FilesDone: filesDone, Bytes: 3 * gib, BytesDone: done,
			Elapsed: time.Duration(sec) * time.Second, Running: phase == sync.PhaseTransfer, Phase: phase}
		if f1 >= 0 {
			s.Active = append(s.Active, sync.FileProgress{Path: path, Size: 2 * gib, Done: f1})
		}
		if f2 >= 0 {
			s.Active = append(s.Active, sync.FileProgress{Path: long, Size: gib, Done: f2})
		}
		return s
	}
	return []sync.ProgressSnapshot{
		snap(1, 300<<20, 200<<20, 100<<20, 5, sync.PhaseTransfer),
		snap(2, 900<<20, 600<<20, 300<<20, 99, sync.PhaseTransfer),
		snap(3, 700<<20, 400<<20, 300<<20, 99, sync.PhaseTransfer), // a retry takes 200 MiB back
		snap(4, 1200<<20, 700<<20, 500<<20, 1000, sync.PhaseTransfer),
		snap(5, 2*gib, 2*gib-1, gib-1, 1232, sync.PhaseTransfer),
		snap(6, 3*gib, -1, -1, 1234, sync.PhasePublish),
		snap(7, 3*gib, -1, -1, 1234, sync.PhasePublish),
	}
}

// TestLiveProgressColumns: every line fits 80 columns, the bars start in the same column on
// every line and frame, and the display shows the publishing phase.
func TestLiveProgressColumns(t *testing.T) {
	lines := runScript(t, runOfTwoFiles())
	barCol := -1
	var publishing bool
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 79 {
			t.Errorf("%d columns: %q", n, l)
		}
		i := strings.Index(l, "[")
		if i < 0 {
			t.Errorf("a line without a bar: %q", l)
			continue
		}
		col := utf8.RuneCountInString(l[:i])
		if barCol < 0 {
			barCol = col
		} else if col != barCol {
			t.Errorf("bar at column %d, elsewhere at %d: %q", col, barCol, l)
		}
		if strings.HasPrefix(l, "publishing") {
			publishing = true
		}
	}
	if !publishing {
		t.Errorf("no frame shows the publishing phase:\n%s", strings.Join(lines, "\n"))
	}
	if t.Failed() {
		t.Logf("display:\n%s", strings.Join(lines, "\n"))
	}
}

var doneBytes = regexp.MustCompile(`\] +([0-9.]+)([BKMGTP])/`)

// TestLiveProgressNeverBackwards: when a failed attempt's bytes are taken back, the run's
// bytes shown stay where they were.
func TestLiveProgressNeverBackwards(t *testing.T) {
	lines := runScript(t, runOfTwoFiles())
	var prev float64
	var seen int
	for _, l := range lines {
		if !strings.Contains(l, "files") && !strings.HasPrefix(l, "publishing") {
			continue
		}
		m := doneBytes.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("no bytes on the run's line %q", l)
		}
		f, _ := strconv.ParseFloat(m[1], 64)
		f *= float64(int64(1) << (10 * strings.Index("BKMGTP", m[2])))
		if f < prev {
			t.Errorf("the run's bytes went back from %.0f to %.0f: %q", prev, f, l)
		}
		prev = f
		seen++
	}
	if seen < 3 {
		t.Fatalf("only %d frames of the run's line:\n%s", seen, strings.Join(lines, "\n"))
	}
}

// TestProgressETAFollowsTailRate: 100 s at 10 MiB/s, then 30 s at 1 MiB/s with 10 MiB left: the
// ETA is about 10 s (the current rate), not the 1 s the mean rate gives.
func TestProgressETAFollowsTailRate(t *testing.T) {
	var tr tracker
	var v progressView
	total := int64(1000+30+10) << 20
	for sec := 0; sec <= 130; sec++ {
		done := int64(min(sec, 100))*10<<20 + int64(max(sec-100, 0))<<20
		v = tr.observe(sync.ProgressSnapshot{Files: 2, Bytes: total, BytesDone: done, Elapsed: time.Duration(sec) * time.Second, Running: true})
	}
	if v.ETA < 9*time.Second || v.ETA > 11*time.Second {
		t.Errorf("ETA %v at 1 MiB/s with 10 MiB left (rate shown %.0f B/s)", v.ETA, v.Rate)
	}
	if !strings.Contains(progressLine(v), "ETA 10s") {
		t.Errorf("periodic line %q", progressLine(v))
	}
	// The same counts go back by 5 MiB (a failed attempt): what is shown does not.
	v2 := tr.observe(sync.ProgressSnapshot{Files: 2, Bytes: total, BytesDone: v.BytesDone - 5<<20, Elapsed: 131 * time.Second, Running: true})
	if v2.BytesDone != v.BytesDone {
		t.Errorf("shown bytes went from %d to %d", v.BytesDone, v2.BytesDone)
	}
}

func TestCompactColumns(t *testing.T) {
	for _, n := range []int64{0, 1023, 1024, 1023 << 10, 1<<20 - 1, 999 << 20, 1<<40 + 5, 1<<62 + 1} {
		if s := compactBytes(n); len(s) > 7 {
			t.Errorf("compactBytes(%d) = %q, longer than 7", n, s)
		}
	}
	for _, d := range []time.Duration{time.Second, 59 * time.Minute, 99 * time.Hour} {
		if s := etaColumn(d); utf8.RuneCountInString(s) != 12 {
			t.Errorf("etaColumn(%v) = %q", d, s)
		}
	}
}
