package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"
	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/store"
)

// What every command shares: usage errors, warnings, flag sets and their parsing, the logger,
// sizes in bytes.

// usageError marks an error in how the command was called or configured.
type usageError = cliconfig.UsageError

func usagef(format string, args ...any) error { return usageError{Err: fmt.Errorf(format, args...)} }

// warn prints a warning: something the operator should know that did not make the work fail.
func warn(stderr io.Writer, format string, args ...any) {
	fmt.Fprintf(stderr, "ssmirror: WARNING: %s\n", fmt.Sprintf(format, args...))
}

// warnRun reports a problem that did not fail the run: through the run's logger (so that it is a
// JSON line with --log-format json), or as a plain warning before there is one.
func warnRun(log *slog.Logger, stderr io.Writer, msg string, err error) {
	if log == nil {
		warn(stderr, "%s: %v", msg, err)
		return
	}
	log.Warn(msg, "error", err.Error())
}

// flagSetHook, when set, is given every flag set newFlagSet makes: commandFlags uses it to
// read a command's flags (for completion and the man page) from the command itself.
var flagSetHook func(*pflag.FlagSet)

// newFlagSet makes a flag set whose --help prints usage text followed by the flags.
func newFlagSet(name, usage string, stdout io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	if flagSetHook != nil {
		flagSetHook(fs)
	}
	fs.SetOutput(stdout)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprint(stdout, usage)
		fmt.Fprintln(stdout, "\nFlags:")
		fmt.Fprint(stdout, fs.FlagUsages())
	}
	return fs
}

// parse parses flags, turning pflag's errors into usage errors.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		if name, ok := strings.CutPrefix(err.Error(), "unknown flag: --"); ok {
			var names []string
			fs.VisitAll(func(f *pflag.Flag) {
				if !f.Hidden {
					names = append(names, f.Name)
				}
			})
			if near := cliconfig.NearestName(name, names); near != "" {
				return usagef("unknown flag: --%s (did you mean --%s?)", name, near)
			}
		}
		return usageError{Err: err}
	}
	return nil
}

// newLogger logs to stderr: warnings by default, info with -v, debug with -vv, errors only
// below 0 (--quiet); text or JSON.
func newLogger(stderr io.Writer, verbosity int, format string) (*slog.Logger, error) {
	level := slog.LevelWarn
	switch {
	case verbosity < 0:
		level = slog.LevelError
	case verbosity == 1:
		level = slog.LevelInfo
	case verbosity >= 2:
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, hopts)), nil
	}
	return nil, usagef("--log-format must be text or json, not %q", format)
}

// humanBytes prints a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func describe(s store.Source) string { return store.Describe(s) }
