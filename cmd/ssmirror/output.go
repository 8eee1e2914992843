package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	gosync "sync"
	"time"

	"github.com/ssmirror/ssmirror/sync"
)

// Machine output: with --log-format json every line the sync writes, on stdout and on stderr,
// is one JSON object; with --json every run ends with a summary object, failed or not.

// jsonLogError marks a run whose final error is to be printed as a JSON log line (report).
type jsonLogError struct{ error }

func (e jsonLogError) Unwrap() error { return e.error }

// jsonLogLine is one JSON log line in log/slog's JSON shape (time, level, msg, attributes).
func jsonLogLine(level, msg string, attrs ...any) []byte {
	m := map[string]any{"time": time.Now().Format(time.RFC3339Nano), "level": level, "msg": msg}
	for i := 0; i+1 < len(attrs); i += 2 {
		m[attrs[i].(string)] = attrs[i+1]
	}
	b, _ := json.Marshal(m)
	return append(b, '\n')
}

// jsonLines is a writer that passes through lines that are already JSON objects and turns any
// other line into a JSON log line ("ssmirror: WARNING: x" becomes level WARN, msg x). It is the
// net under every message written on the way (warnings from helpers that print plain text).
type jsonLines struct {
	mu  gosync.Mutex
	w   io.Writer
	buf []byte
}

func newJSONLines(w io.Writer) *jsonLines { return &jsonLines{w: w} }

func (j *jsonLines) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = append(j.buf, p...)
	for {
		i := bytes.IndexByte(j.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := j.buf[:i]
		if err := j.emit(line); err != nil {
			return 0, err
		}
		j.buf = j.buf[i+1:]
	}
}

func (j *jsonLines) emit(line []byte) error {
	s := strings.TrimRight(string(line), "\r")
	if strings.TrimSpace(s) == "" {
		return nil
	}
	if strings.HasPrefix(s, "{") && json.Valid([]byte(s)) {
		_, err := j.w.Write(append([]byte(s), '\n'))
		return err
	}
	level := "INFO"
	s = strings.TrimPrefix(s, "ssmirror: ")
	if rest, ok := strings.CutPrefix(s, "WARNING: "); ok {
		level, s = "WARN", rest
	} else if strings.HasPrefix(s, "SDK ") && strings.Contains(s, " WARN ") {
		level = "WARN" // the AWS SDK's default logger
	}
	_, err := j.w.Write(jsonLogLine(level, s))
	return err
}

// Flush writes a last line left without its newline.
func (j *jsonLines) Flush() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.buf) > 0 {
		j.emit(j.buf)
		j.buf = nil
	}
}

// wantsJSONLog reports whether the command line or the environment asks for --log-format json
// (for failures before the flags are all read).
func wantsJSONLog(args []string, lookupEnv func(string) (string, bool)) bool {
	format := ""
	if v, ok := lookupEnv(envName("log-format")); ok {
		format = v
	}
	for i, a := range args {
		switch {
		case a == "--":
			return format == "json"
		case a == "--log-format" && i+1 < len(args):
			format = args[i+1]
		case strings.HasPrefix(a, "--log-format="):
			format = strings.TrimPrefix(a, "--log-format=")
		}
	}
	return format == "json"
}

// syncSummary is the --json summary of a sync: every run has one, a dry run and a run that
// failed before it began included. Lists are empty rather than null.
type syncSummary struct {
	OK              bool          `json:"ok"`
	Error           string        `json:"error"`
	Source          string        `json:"source"`
	Target          string        `json:"target"`
	DryRun          bool          `json:"dry_run"`
	Seconds         float64       `json:"seconds"`
	Curated         bool          `json:"curated"`
	ItemsAdded      int           `json:"items_added"`
	ItemsRemoved    int           `json:"items_removed"`
	ItemsKept       int           `json:"items_kept"`
	FilesToFetch    int           `json:"files_to_fetch"`
	BytesToFetch    int64         `json:"bytes_to_fetch"`
	Fetched         int           `json:"files_fetched"`
	FetchedBytes    int64         `json:"bytes_fetched"`
	Copied          int           `json:"files_copied"`
	CopiedBytes     int64         `json:"bytes_copied"`
	Adopted         int           `json:"files_adopted"`
	Drifted         []string      `json:"drifted"`
	MetadataWritten []string      `json:"metadata_written"`
	Deleted         []string      `json:"deleted"`
	PendingDeletion int           `json:"pending_deletion"`
	Added           []planItem    `json:"added"`
	Removed         []planItem    `json:"removed"`
	Stages          []stageTiming `json:"stages"`
}

type planItem struct {
	Product string `json:"product"`
	Version string `json:"version"`
	Item    string `json:"item"`
	Path    string `json:"path"`
	Size    int64  `json:"size"`
}

type stageTiming struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// summarize builds the summary of a run; rep may be nil (a run that failed before it began) or
// lack a plan.
func summarize(source, target string, dryRun bool, rep *sync.Report, took time.Duration, runErr error) syncSummary {
	out := syncSummary{
		OK: runErr == nil, Source: source, Target: target, DryRun: dryRun, Seconds: took.Seconds(),
		Drifted: []string{}, MetadataWritten: []string{}, Deleted: []string{},
		Added: []planItem{}, Removed: []planItem{}, Stages: []stageTiming{},
	}
	if runErr != nil {
		out.Error = runErr.Error()
	}
	if rep == nil {
		return out
	}
	out.Curated = rep.Curated
	if p := rep.Plan; p != nil {
		out.ItemsAdded, out.ItemsRemoved, out.ItemsKept = len(p.Added), len(p.Removed), p.Kept
		out.FilesToFetch, out.BytesToFetch = len(p.Fetch), p.FetchBytes()
		if dryRun {
			for _, c := range p.Added {
				out.Added = append(out.Added, planItem{c.Product, c.Version, c.Item, c.Path, c.Size})
			}
			for _, c := range p.Removed {
				out.Removed = append(out.Removed, planItem{c.Product, c.Version, c.Item, c.Path, c.Size})
			}
		}
	}
	out.Fetched, out.FetchedBytes = rep.Fetched, rep.FetchedBytes
	out.Copied, out.CopiedBytes = rep.Copied, rep.CopiedBytes
	out.Adopted, out.PendingDeletion = rep.Adopted, rep.PendingDeletion
	if rep.Drifted != nil {
		out.Drifted = rep.Drifted
	}
	if rep.MetadataWritten != nil {
		out.MetadataWritten = rep.MetadataWritten
	}
	if rep.Deleted != nil {
		out.Deleted = rep.Deleted
	}
	for _, s := range rep.Stages {
		out.Stages = append(out.Stages, stageTiming{s.Name, s.Duration.Seconds()})
	}
	return out
}

// writeSummary prints s as JSON: indented, or on one line when every line must be an object.
func writeSummary(w io.Writer, s syncSummary, oneLine bool) {
	enc := json.NewEncoder(w)
	if !oneLine {
		enc.SetIndent("", "  ")
	}
	enc.Encode(s)
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

// reportJSON prints the final error of a run as a JSON log line.
func reportJSON(w io.Writer, err error, code int, signal string) {
	var inner jsonLogError
	if errors.As(err, &inner) {
		err = inner.error
	}
	attrs := []any{"error", err.Error(), "exit_code", code}
	msg := "failed"
	if signal != "" {
		attrs = append(attrs, "signal", signal)
		msg = "interrupted"
	}
	w.Write(jsonLogLine("ERROR", msg, attrs...))
}

// redirectStderr points os.Stderr at a pipe whose lines are copied to w, for code that writes
// to os.Stderr on its own: the AWS SDK's default logger (its warnings) captures os.Stderr when a
// client is configured. restore puts os.Stderr back and returns once everything is copied.
func redirectStderr(w io.Writer) (restore func(), err error) {
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	orig := os.Stderr
	os.Stderr = pw
	done := make(chan struct{})
	go func() {
		io.Copy(w, r)
		close(done)
	}()
	return func() {
		os.Stderr = orig
		pw.Close()
		<-done
		r.Close()
	}, nil
}
