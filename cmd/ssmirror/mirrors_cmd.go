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

	"github.com/spf13/pflag"

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

// runMirrors runs the [mirror] sections names of the config file, as the command line args
// (flags only) and the configuration pick and pace them. Every section is configured and
// checked before any runs, so a mistake in one stops the job before it writes anything.
func runMirrors(ctx context.Context, args []string, names []string, stdout, stderr io.Writer) error {
	settingKeys() // before any mirror runs: see there
	m, err := configureMirrors(args, names)
	if err != nil {
		return err
	}
	if m.run, err = cliconfig.PickMirrors(m.path, names, m.only); err != nil {
		return err
	}
	m.stdout, m.stderr = stdout, stderr
	if m.jsonLog {
		je, restore := jsonStderr(stderr)
		defer je.Flush() // after restore
		defer restore()
		m.stderr = je
	}
	warnAll(m.stderr, unknownEnv(os.Environ()))
	m.outs, m.codes, m.started = make([]bytes.Buffer, len(m.run)), make([]int, len(m.run)), make([]bool, len(m.run))
	errs := cliconfig.RunMirrors(ctx, m.run, m.parallel, m.runOne)
	return m.finish(ctx, errs)
}

// mirrorsRun is a run of several mirrors: the settings of the whole file, the mirrors picked
// and what each of them printed and exited with.
type mirrorsRun struct {
	args     []string
	path     string // the config file
	jsonOut  bool
	jsonLog  bool
	quiet    bool
	only     []string
	parallel int
	run      []string // the mirrors picked, in the file's order
	stdout   io.Writer
	stderr   io.Writer
	mu       gosync.Mutex // one mirror's output at a time
	outs     []bytes.Buffer
	codes    []int
	started  []bool
}

// configureMirrors configures and checks every section names, and reads the settings of the
// whole file (the first section's: sections cannot set them).
func configureMirrors(args []string, names []string) (*mirrorsRun, error) {
	m := &mirrorsRun{args: args, parallel: 1}
	textfiles := map[string]string{} // --metrics-textfile: the mirror writing it
	for i, name := range names {
		f, fs, err := configureMirror(args, name)
		if err != nil {
			return nil, err
		}
		if other, ok := textfiles[f.metrics.textfile]; ok && f.metrics.textfile != "" {
			return nil, usagef("mirrors %s and %s would both write --metrics-textfile %s: set metrics-textfile in each [mirror] section", other, name, f.metrics.textfile)
		}
		textfiles[f.metrics.textfile] = name
		if i == 0 {
			m.path = cliconfig.ConfigPath(fs, os.LookupEnv)
			m.jsonOut, m.jsonLog, m.only, m.parallel, m.quiet = f.jsonOut, f.logFormat == "json", f.Sections.Only, f.Sections.Parallel, f.quiet
		}
	}
	return m, nil
}

// configureMirror configures and checks the section name, as a check before any mirror runs.
func configureMirror(args []string, name string) (*syncFlags, *pflag.FlagSet, error) {
	f := &syncFlags{}
	fs := newSyncFlagSet(f, io.Discard)
	if err := parse(fs, args); err != nil {
		return nil, nil, err
	}
	if len(fs.Args()) > 0 {
		return nil, nil, usagef("SOURCE, TARGET and FILTER arguments (%s) do not go with a config file of [mirror] sections: each section names its source, target and filters", strings.Join(fs.Args(), " "))
	}
	if _, err := cliconfig.ConfigureMirror(fs, os.LookupEnv, isSettingKey, name); err != nil {
		return nil, nil, err
	}
	if err := f.Sync.Check(fs); err != nil {
		return nil, nil, fmt.Errorf("mirror %s: %w", name, err)
	}
	if err := f.metrics.check(); err != nil {
		return nil, nil, fmt.Errorf("mirror %s: %w", name, err)
	}
	return f, fs, nil
}

// runOne runs the mirror name as a sync of its own, its stderr tagged with its name, and
// prints its stdout once it ends (unless --json gathers it into the summary).
func (m *mirrorsRun) runOne(ctx context.Context, name string) error {
	i := indexOf(m.run, name)
	m.started[i] = true
	tagged := &tagWriter{w: &lockedWriter{mu: &m.mu, w: m.stderr}, mirror: name, json: m.jsonLog}
	err := runOneSync(ctx, m.args, &m.outs[i], tagged, name)
	m.codes[i] = exitCode(ctx, err)
	if m.codes[i] != exitOK {
		report(ctx, err, tagged)
	}
	tagged.Flush()
	if !m.jsonOut && (!m.quiet || err != nil) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !m.jsonLog {
			fmt.Fprintf(m.stdout, "== mirror %s ==\n", name)
		}
		(&tagWriter{w: m.stdout, mirror: name, json: m.jsonLog, plain: true}).writeAll(m.outs[i].Bytes())
	}
	return err
}

// finish reports the mirrors that did not start, prints the summary (--json) or the totals,
// and returns the outcome: nil when every mirror succeeded.
func (m *mirrorsRun) finish(ctx context.Context, errs []error) error {
	sum, failed := m.summarize(ctx, errs)
	if m.jsonOut {
		enc := json.NewEncoder(m.stdout)
		if !m.jsonLog {
			enc.SetIndent("", "  ")
		}
		enc.Encode(sum)
	} else if !m.jsonLog && (!m.quiet || len(failed) > 0) {
		fmt.Fprintf(m.stdout, "== %d mirrors: %d ok, %d failed ==\n", len(m.run), len(m.run)-len(failed), len(failed))
	}
	if len(failed) == 0 {
		return nil
	}
	var merr error = mirrorsError{code: sum.ExitCode, failed: failed}
	if m.jsonLog {
		merr = jsonLogError{merr}
	}
	return merr
}

// summarize is each mirror's outcome (errs: its error) and the names of those that failed, with
// their exit codes; a mirror that did not start is reported here.
func (m *mirrorsRun) summarize(ctx context.Context, errs []error) (mirrorsSummary, []string) {
	var failed []string
	sum := mirrorsSummary{OK: true, Mirrors: []mirrorSummary{}}
	for i, name := range m.run {
		if !m.started[i] {
			m.codes[i] = exitCode(ctx, errs[i])
			report(ctx, errs[i], &tagWriter{w: m.stderr, mirror: name, json: m.jsonLog})
		}
		ms := mirrorSummary{Mirror: name, OK: m.codes[i] == exitOK, ExitCode: m.codes[i], Summary: json.RawMessage("null")}
		if errs[i] != nil {
			ms.Error = unwrapJSONLog(errs[i]).Error()
			failed = append(failed, fmt.Sprintf("%s (exit %d)", name, m.codes[i]))
			sum.OK = false
		}
		if m.jsonOut {
			ms.Summary = lastJSON(m.outs[i].Bytes(), m.stdout, name, m.jsonLog)
		}
		sum.Mirrors = append(sum.Mirrors, ms)
	}
	sum.ExitCode = worstExit(m.codes)
	return sum, failed
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
