package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/sync"
)

// How a command's outcome becomes the process's exit status and its last message: the exit
// codes, mapped in one place (exitCode), and the report of a failure, as text or as JSON.

// Exit codes, mapped in one place (exitCode). Scripts may rely on them; README lists them.
const (
	exitOK       = 0
	exitFailure  = 1   // the work failed: see the message
	exitUsage    = 2   // the command line or the configuration is wrong
	exitLocked   = 75  // EX_TEMPFAIL: another run holds the target's lock; try again later
	exitSignaled = 128 // plus the signal number: interrupted by SIGINT (130) or SIGTERM (143)
)

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

// jsonFailed prints, with --json (jsonOut), the failure of a command whose report could not be
// made as the JSON object on stdout that scripts parse: {"ok": false, "error": ..., "exit_code":
// ...}. It returns err, which is reported on stderr as usual.
func jsonFailed(ctx context.Context, stdout io.Writer, jsonOut bool, err error) error {
	if !jsonOut || err == nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(struct {
		OK       bool   `json:"ok"`
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}{false, err.Error(), exitCode(ctx, err)})
	return err
}
