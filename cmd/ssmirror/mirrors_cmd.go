package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	gosync "sync"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
)

// Several mirrors in one job: a config file of [mirror NAME] sections (cliconfig's mirrors.go)
// runs each section as its own sync, one after the other, or --parallel-mirrors at once. One
// failing does not stop the others. Each mirror's output is what a single sync prints, kept
// together: its stdout is held until it ends and then printed under a "== mirror NAME ==" line
// (with --json, gathered into one document; see mirrorsSummary), and every line it writes on
// stderr is tagged with its name ("mirror NAME: ..." or, with --log-format json, a "mirror"
// field). The exit code is the worst of the mirrors' (worstExit).

// mirrorsSummary is what --json prints for a config file of [mirror] sections: whether every
// mirror succeeded, the exit code, and each mirror's --json summary, in the file's order.
type mirrorsSummary struct {
	OK       bool            `json:"ok"`
	ExitCode int             `json:"exit_code"`
	Mirrors  []mirrorSummary `json:"mirrors"`
}

type mirrorSummary struct {
	Mirror   string `json:"mirror"`
	OK       bool   `json:"ok"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	// Summary is the mirror's own --json summary, as a single sync prints it (null when the
	// mirror did not start).
	Summary json.RawMessage `json:"summary"`
}

// mirrorsError is the outcome of a run of several mirrors, some of which failed: each mirror's
// error has been reported already; the exit code is the worst of theirs.
type mirrorsError struct {
	code   int
	failed []string // "NAME (exit N)"
}

func (e mirrorsError) Error() string {
	return fmt.Sprintf("%d mirror(s) failed: %s", len(e.failed), strings.Join(e.failed, ", "))
}

// exitRank orders exit codes from best to worst: success, a lock held by another run (try
// later), a failed run, a configuration to fix, an interruption.
func exitRank(code int) int {
	switch {
	case code == exitOK:
		return 0
	case code == exitLocked:
		return 1
	case code == exitFailure:
		return 2
	case code == exitUsage:
		return 3
	case code > exitSignaled:
		return 4
	}
	return 2
}

// worstExit is the worst of codes by exitRank.
func worstExit(codes []int) int {
	worst := exitOK
	for _, c := range codes {
		if exitRank(c) > exitRank(worst) {
			worst = c
		}
	}
	return worst
}

// runMirrors runs the [mirror] sections names of the config file, as the command line args
// (flags only) and the configuration pick and pace them. Every section is configured and
// checked before any runs, so a mistake in one stops the job before it writes anything.
func runMirrors(ctx context.Context, args []string, names []string, stdout, stderr io.Writer) error {
	settingKeys() // before any mirror runs: see there
	var path, logFormat string
	var jsonOut, quiet bool
	var only []string
	parallel := 1
	textfiles := map[string]string{} // --metrics-textfile: the mirror writing it
	for i, name := range names {
		var f syncFlags
		fs := newSyncFlagSet(&f, io.Discard)
		if err := parse(fs, args); err != nil {
			return err
		}
		if len(fs.Args()) > 0 {
			return usagef("SOURCE, TARGET and FILTER arguments (%s) do not go with a config file of [mirror] sections: each section names its source, target and filters", strings.Join(fs.Args(), " "))
		}
		if _, err := cliconfig.ConfigureMirror(fs, os.LookupEnv, isSettingKey, name); err != nil {
			return err
		}
		if err := f.Sync.Check(fs); err != nil {
			return fmt.Errorf("mirror %s: %w", name, err)
		}
		if err := f.metrics.check(); err != nil {
			return fmt.Errorf("mirror %s: %w", name, err)
		}
		if other, ok := textfiles[f.metrics.textfile]; ok && f.metrics.textfile != "" {
			return usagef("mirrors %s and %s would both write --metrics-textfile %s: set metrics-textfile in each [mirror] section", other, name, f.metrics.textfile)
		}
		textfiles[f.metrics.textfile] = name
		if i == 0 { // settings of the whole file: sections cannot set them
			path = cliconfig.ConfigPath(fs, os.LookupEnv)
			jsonOut, logFormat, only, parallel, quiet = f.jsonOut, f.logFormat, f.Sections.Only, f.Sections.Parallel, f.quiet
		}
	}
	run, err := cliconfig.PickMirrors(path, names, only)
	if err != nil {
		return err
	}
	jsonLog := logFormat == "json"
	if jsonLog {
		je := newJSONLines(stderr)
		defer je.Flush() // after restore
		if f, ok := stderr.(*os.File); ok && f == os.Stderr {
			// What the AWS SDK writes on the process's stderr becomes JSON lines too.
			if restore, rerr := redirectStderr(je); rerr == nil {
				defer restore()
			}
		}
		stderr = je
	}
	warnAll(stderr, unknownEnv(os.Environ()))
	var mu gosync.Mutex // one mirror's output at a time
	lockedErr := &lockedWriter{mu: &mu, w: stderr}
	outs := make([]bytes.Buffer, len(run))
	codes := make([]int, len(run))
	started := make([]bool, len(run))
	errs := cliconfig.RunMirrors(ctx, run, parallel, func(ctx context.Context, name string) error {
		i := indexOf(run, name)
		started[i] = true
		tagged := &tagWriter{w: lockedErr, mirror: name, json: jsonLog}
		err := runOneSync(ctx, args, &outs[i], tagged, name)
		codes[i] = exitCode(ctx, err)
		if codes[i] != exitOK {
			report(ctx, err, tagged)
		}
		tagged.Flush()
		if !jsonOut && (!quiet || err != nil) {
			mu.Lock()
			defer mu.Unlock()
			if !jsonLog {
				fmt.Fprintf(stdout, "== mirror %s ==\n", name)
			}
			(&tagWriter{w: stdout, mirror: name, json: jsonLog, plain: true}).writeAll(outs[i].Bytes())
		}
		return err
	})
	var failed []string
	sum := mirrorsSummary{OK: true, Mirrors: []mirrorSummary{}}
	for i, name := range run {
		if !started[i] {
			codes[i] = exitCode(ctx, errs[i])
			report(ctx, errs[i], &tagWriter{w: stderr, mirror: name, json: jsonLog})
		}
		ms := mirrorSummary{Mirror: name, OK: codes[i] == exitOK, ExitCode: codes[i], Summary: json.RawMessage("null")}
		if errs[i] != nil {
			ms.Error = unwrapJSONLog(errs[i]).Error()
			failed = append(failed, fmt.Sprintf("%s (exit %d)", name, codes[i]))
			sum.OK = false
		}
		if jsonOut {
			ms.Summary = lastJSON(outs[i].Bytes(), stdout, name, jsonLog)
		}
		sum.Mirrors = append(sum.Mirrors, ms)
	}
	sum.ExitCode = worstExit(codes)
	if jsonOut {
		enc := json.NewEncoder(stdout)
		if !jsonLog {
			enc.SetIndent("", "  ")
		}
		enc.Encode(sum)
	} else if !jsonLog && (!quiet || len(failed) > 0) {
		fmt.Fprintf(stdout, "== %d mirrors: %d ok, %d failed ==\n", len(run), len(run)-len(failed), len(failed))
	}
	if len(failed) == 0 {
		return nil
	}
	var merr error = mirrorsError{code: sum.ExitCode, failed: failed}
	if jsonLog {
		merr = jsonLogError{merr}
	}
	return merr
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

func unwrapJSONLog(err error) error {
	var j jsonLogError
	if errors.As(err, &j) {
		return j.error
	}
	return err
}

// lastJSON is the last JSON value of a mirror's stdout (its --json summary); what comes before
// it is passed to w tagged. Output that holds no JSON value gives null.
func lastJSON(out []byte, w io.Writer, mirror string, jsonLog bool) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(out))
	var vals []json.RawMessage
	for {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		vals = append(vals, v)
	}
	if len(vals) == 0 {
		return json.RawMessage("null")
	}
	tw := &tagWriter{w: w, mirror: mirror, json: jsonLog, plain: true}
	for _, v := range vals[:len(vals)-1] {
		tw.writeAll(append(v, '\n'))
	}
	var compact bytes.Buffer
	if json.Compact(&compact, vals[len(vals)-1]) != nil {
		return vals[len(vals)-1]
	}
	return compact.Bytes()
}

// lockedWriter serialises writes to w under mu.
type lockedWriter struct {
	mu *gosync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tagWriter writes whole lines to w, each tagged with the mirror it comes from: a JSON object
// gains a "mirror" field; another line is prefixed "mirror NAME: " (unless plain, for stdout,
// whose lines the header already names).
type tagWriter struct {
	w      io.Writer
	mirror string
	json   bool
	plain  bool
	mu     gosync.Mutex
	buf    []byte
}

func (t *tagWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		t.emit(t.buf[:i])
		t.buf = t.buf[i+1:]
	}
}

func (t *tagWriter) writeAll(p []byte) {
	t.Write(p)
	t.Flush()
}

// Flush writes a last line left without its newline.
func (t *tagWriter) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > 0 {
		t.emit(t.buf)
		t.buf = nil
	}
}

func (t *tagWriter) emit(line []byte) {
	var out []byte
	switch {
	case len(line) > 1 && line[0] == '{' && json.Valid(line):
		name, _ := json.Marshal(t.mirror)
		out = append([]byte(`{"mirror":`), name...)
		if rest := bytes.TrimSpace(line[1:]); len(rest) > 0 && rest[0] != '}' {
			out = append(out, ',')
		}
		out = append(out, line[1:]...)
	case t.plain:
		out = line
	default:
		rest, ok := bytes.CutPrefix(line, []byte("ssmirror: "))
		out = []byte("mirror " + t.mirror + ": ")
		if ok {
			out = append([]byte("ssmirror: "), out...)
		}
		out = append(out, rest...)
	}
	t.w.Write(append(out, '\n'))
}
