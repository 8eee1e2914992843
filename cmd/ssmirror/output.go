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

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
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
	if v, ok := lookupEnv(cliconfig.EnvName("log-format")); ok {
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

// writeSummary prints s as JSON: indented, or on one line when every line must be an object.
func writeSummary(w io.Writer, s cliconfig.Summary, oneLine bool) {
	enc := json.NewEncoder(w)
	if !oneLine {
		enc.SetIndent("", "  ")
	}
	enc.Encode(s)
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

// jsonStderr makes stderr JSON lines. When stderr is the process's own, what other code writes
// there (the AWS SDK's warnings) becomes JSON lines too until restore; flush je after restore.
func jsonStderr(stderr io.Writer) (je *jsonLines, restore func()) {
	je, restore = newJSONLines(stderr), func() {}
	if f, ok := stderr.(*os.File); ok && f == os.Stderr {
		if r, err := redirectStderr(je); err == nil {
			restore = r
		}
	}
	return je, restore
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
