package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// Exit codes, mapped in one place (exitCode). Scripts may rely on them; README lists them.
const (
	exitOK       = 0
	exitFailure  = 1   // the work failed: see the message
	exitUsage    = 2   // the command line or the configuration is wrong
	exitLocked   = 75  // EX_TEMPFAIL: another run holds the target's lock; try again later
	exitSignaled = 128 // plus the signal number: interrupted by SIGINT (130) or SIGTERM (143)
)

// interrupted is the cause of the main context's cancellation when a signal arrives.
type interrupted struct{ sig syscall.Signal }

func (e interrupted) Error() string { return "interrupted by " + signalName(e.sig) }

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// exitCode maps the outcome of a command to the process's exit status. A run that failed while
// a signal was cancelling it exits 128+signal whatever its error says (a cancelled transfer, a
// lock wait cut short); a run that completed before the signal took effect exits 0.
func exitCode(ctx context.Context, err error) int {
	if err == nil || errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	var sig interrupted
	if errors.As(context.Cause(ctx), &sig) || errors.As(err, &sig) {
		return exitSignaled + int(sig.sig)
	}
	var mode *sync.ModeChangeError // a target published in another mode: a configuration mistake
	if errors.As(err, &mode) {
		return exitUsage
	}
	var mirrors mirrorsError // several mirrors: the worst of theirs
	if errors.As(err, &mirrors) {
		return mirrors.code
	}
	// A run with several targets in which some failed (a lock held on one of them included)
	// exits 1: the others published, and the error names each failed target and why.
	var some *sync.TargetsError
	if errors.As(err, &some) && some.Targets > 1 {
		return exitFailure
	}
	var locked *sync.LockedError
	if errors.As(err, &locked) {
		return exitLocked
	}
	var ue usageError
	if errors.As(err, &ue) || s3Mistake(err) != "" {
		return exitUsage
	}
	return exitFailure
}

// usageError marks an error in how the command was called or configured.
type usageError = cliconfig.UsageError

func usagef(format string, args ...any) error { return usageError{Err: fmt.Errorf(format, args...)} }

const topUsage = `ssmirror publishes SimpleStreams mirrors (MAAS boot images, cloud images, LXD images)
into S3-compatible buckets or plain directories: content first, verified while it streams,
metadata last, old files deleted only after a grace period.

Usage:
  ssmirror [sync] [flags] SOURCE TARGET [FILTER...]   mirror SOURCE into TARGET
  ssmirror query [flags] SOURCE [FILTER...]           list what a selection matches
  ssmirror verify [flags] TARGET                      audit a published mirror (exit 1 on any fault)
  ssmirror gc [flags] TARGET                          delete what nothing has referenced for --gc-grace
  ssmirror status [flags] TARGET                      what a mirror holds, its lock, what waits for deletion
  ssmirror check [flags] URL [FILTER...]              read a mirror through its public URL as a site would
  ssmirror keygen [flags]                             make a signing key for curated mirrors
  ssmirror version                                    the version and VCS revision of this binary
  ssmirror completion bash|zsh|fish                   a shell completion script
  ssmirror man                                        the man page (roff): ssmirror man | man -l -
  ssmirror help [COMMAND]                             help on a command

The sync command line is sstream-mirror's, so the MAAS documentation's commands work with the
name changed:

  ssmirror --keyring=/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg \
      https://images.maas.io/ephemeral-v3/stable/ /srv/maas-images \
      'arch=amd64' 'release~(jammy|noble)' --max=1 --progress

Run 'ssmirror help sync' for the flags.
`

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "sync"
	if len(args) > 0 {
		switch args[0] {
		case "sync", "query", "keygen", "verify", "gc", "status", "check":
			cmd, args = args[0], args[1:]
		case "help":
			if len(args) > 1 {
				args = []string{args[1], "--help"}
				return Main(ctx, args, stdout, stderr)
			}
			fmt.Fprint(stdout, topUsage)
			return exitOK
		case "version", "--version":
			fmt.Fprintln(stdout, printVersion())
			return exitOK
		case "completion":
			return report(ctx, runCompletion(args[1:], stdout), stderr)
		case "man":
			if len(args) > 1 {
				return report(ctx, usagef("man takes no arguments"), stderr)
			}
			writeMan(stdout, manDate())
			return exitOK
		default:
			if err := checkCommandWord(args[0]); err != nil {
				return report(ctx, err, stderr)
			}
		}
	}
	if len(args) == 0 && cmd == "sync" && os.Getenv("SSMIRROR_CONFIG") == "" && os.Getenv("SSMIRROR_SOURCE") == "" {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	if cmd != "sync" { // sync warns once its log format is known
		warnAll(stderr, unknownEnv(os.Environ()))
	}
	var err error
	switch cmd {
	case "sync":
		err = runSync(ctx, args, stdout, stderr)
	case "query":
		err = runQuery(ctx, args, stdout, stderr)
	case "keygen":
		err = runKeygen(ctx, args, stdout, stderr)
	case "verify":
		err = runVerify(ctx, args, stdout, stderr)
	case "gc":
		err = runGC(ctx, args, stdout, stderr)
	case "status":
		err = runStatus(ctx, args, stdout, stderr)
	case "check":
		err = runCheck(ctx, args, stdout, stderr)
	}
	return report(ctx, err, stderr)
}

// report prints err as one line (plus detail lines for multi-file failures) and returns the exit
// code exitCode maps it to.
func report(ctx context.Context, err error, stderr io.Writer) int {
	code := exitCode(ctx, err)
	if code == exitOK {
		return code
	}
	var sig interrupted
	if errors.As(err, new(jsonLogError)) {
		name := ""
		if errors.As(context.Cause(ctx), &sig) || errors.As(err, &sig) {
			name = signalName(sig.sig)
		}
		reportJSON(stderr, err, code, name)
		return code
	}
	if errors.As(context.Cause(ctx), &sig) && !errors.As(err, &sig) {
		fmt.Fprintf(stderr, "ssmirror: %v: %s\n", sig, withHint(err))
		return code
	}
	if te, ok := err.(*sync.TransferError); ok && ctx.Err() == nil {
		// Each file's failure was logged as it happened ("transfer failed"): say it once.
		n := "1 file"
		if len(te.Errs) != 1 {
			n = fmt.Sprintf("%d files", len(te.Errs))
		}
		msg := n + ` failed, nothing was published: each is logged above ("transfer failed" with its path and error)`
		if h := flagHint(err); h != "" {
			msg += " (" + h + ")"
		}
		fmt.Fprintf(stderr, "ssmirror: %s\n", msg)
		return code
	}
	fmt.Fprintf(stderr, "ssmirror: %s\n", withHint(err))
	return code
}

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

// checkCommandWord refuses a first argument that can only be a mistyped command: a bare word
// (no /, :, . or filter operator) that names no existing file. Without this check
// "ssmirror verfy /srv/mirror" would mirror a source directory called verfy.
func checkCommandWord(arg string) error {
	if arg == "" || strings.HasPrefix(arg, "-") || strings.ContainsAny(arg, "/:.=~!\\") {
		return nil
	}
	if _, err := os.Stat(arg); err == nil {
		return nil // a directory of that name: a SOURCE
	}
	hint := ""
	commands := commandNames()
	if near := nearest(arg, commands); near != "" {
		hint = fmt.Sprintf(" (did you mean %s?)", near)
	}
	return usagef("unknown command %q%s; the commands are %s (a SOURCE directory of that name is written ./%s)",
		arg, hint, strings.Join(commands, ", "), arg)
}

// nearest returns the candidate closest to s by edit distance, if it is close enough to be a
// typo of it ("" otherwise).
func nearest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := streams.EditDistance(strings.ToLower(s), c); d < bestD && d <= max(1, len(c)/3) {
			best, bestD = c, d
		}
	}
	return best
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
