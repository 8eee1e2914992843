package sync

import (
	"io"
	"sort"
	gosync "sync"
	"sync/atomic"
	"time"
)

// Progress counts a run's transfers as they happen. The run updates it; a display reads
// Snapshot from another goroutine. The zero value is ready to use.
type Progress struct {
	files, filesDone atomic.Int64
	bytes, bytesDone atomic.Int64
	started          atomic.Int64 // unix nanoseconds
	running          atomic.Bool
	phase            atomic.Pointer[string]

	mu     gosync.Mutex
	active map[string]*fileEntry // files being transferred, by path
}

// fileEntry is one file in flight; its reader counts into done without taking the lock.
type fileEntry struct {
	path string
	size int64
	done atomic.Int64
}

// FileProgress is one file being transferred.
type FileProgress struct {
	Path string
	Size int64
	Done int64
}

// ProgressSnapshot is a consistent-enough view of a Progress.
type ProgressSnapshot struct {
	Files, FilesDone int64
	Bytes, BytesDone int64
	Elapsed          time.Duration
	Running          bool
	// Phase is what the run does now: "" before the transfer, then PhaseTransfer,
	// PhasePublish, PhaseCleanUp.
	Phase string
	// Active are the files being transferred now, sorted by path.
	Active []FileProgress
}

// Rate is the mean transfer rate so far, in bytes per second.
func (s ProgressSnapshot) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.BytesDone) / s.Elapsed.Seconds()
}

// ETA estimates the time left at the mean rate (0 when unknown).
func (s ProgressSnapshot) ETA() time.Duration {
	r := s.Rate()
	if r <= 0 || s.BytesDone >= s.Bytes {
		return 0
	}
	return time.Duration(float64(s.Bytes-s.BytesDone) / r * float64(time.Second))
}

// The phases of a run a display shows.
const (
	PhaseTransfer = "transferring"
	PhasePublish  = "publishing"
	PhaseCleanUp  = "cleaning up"
)

func (p *Progress) setPhase(name string) { p.phase.Store(&name) }

// Snapshot reads the counters.
func (p *Progress) Snapshot() ProgressSnapshot {
	s := ProgressSnapshot{
		Files:     p.files.Load(),
		FilesDone: p.filesDone.Load(),
		Bytes:     p.bytes.Load(),
		BytesDone: p.bytesDone.Load(),
		Running:   p.running.Load(),
	}
	if ph := p.phase.Load(); ph != nil {
		s.Phase = *ph
	}
	if t := p.started.Load(); t != 0 {
		s.Elapsed = time.Since(time.Unix(0, t))
	}
	p.mu.Lock()
	for _, f := range p.active {
		s.Active = append(s.Active, FileProgress{Path: f.path, Size: f.size, Done: f.done.Load()})
	}
	p.mu.Unlock()
	sort.Slice(s.Active, func(i, j int) bool { return s.Active[i].Path < s.Active[j].Path })
	return s
}

// startFile and finishFile bracket one file's transfer; the file's readers count its bytes
// through file.
func (p *Progress) startFile(path string, size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active == nil {
		p.active = map[string]*fileEntry{}
	}
	p.active[path] = &fileEntry{path: path, size: size}
}

func (p *Progress) finishFile(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.active, path)
}

// file returns the entry of a file in flight, nil when path is not one.
func (p *Progress) file(path string) *fileEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active[path]
}

func (p *Progress) begin(files int, bytes int64) {
	p.files.Store(int64(files))
	p.bytes.Store(bytes)
	p.started.Store(time.Now().UnixNano())
	p.running.Store(true)
	p.setPhase(PhaseTransfer)
}

// addFile counts n more bytes (negative: takes them back) of the file e, and returns what it
// counted: a file's bytes count once, up to its size, however many targets it is checked in,
// copied into or streamed to (a fan-out run). A nil e (a file not in flight) counts n as it is.
func (p *Progress) addFile(e *fileEntry, n int64) int64 {
	if e == nil {
		p.add(n)
		return n
	}
	for {
		done := e.done.Load()
		d := max(n, -done)
		if n > 0 {
			d = max(0, min(n, e.size-done))
		}
		if d == 0 {
			return 0
		}
		if e.done.CompareAndSwap(done, done+d) {
			p.add(d)
			return d
		}
	}
}

// addPath is addFile of the file in flight at path.
func (p *Progress) addPath(path string, n int64) int64 { return p.addFile(p.file(path), n) }

func (p *Progress) end()        { p.running.Store(false) }
func (p *Progress) add(n int64) { p.bytesDone.Add(n) }
func (p *Progress) fileDone()   { p.filesDone.Add(1) }

// countingReader counts the bytes of one file into the progress: the run's total and, while
// the file is in flight, its own entry (looked up once, not on every read).
type countingReader struct {
	r    io.Reader
	p    *Progress
	file *fileEntry // nil when the file is not tracked
	n    int64
	// counted is what the progress took of n: a file another reader or copy already counted
	// whole (a fan-out) is not counted again.
	counted int64
}

func newCountingReader(r io.Reader, p *Progress, path string) *countingReader {
	return &countingReader{r: r, p: p, file: p.file(path)}
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.count(int64(n))
	c.n += int64(n)
	return n, err
}

// count adds n bytes (negative: takes back bytes of an attempt that failed, at most what this
// reader counted).
func (c *countingReader) count(n int64) {
	c.counted += c.p.addFile(c.file, max(n, -c.counted))
}
