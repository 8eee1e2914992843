package main

import (
	"context"
	"errors"
	"syscall"

	"github.com/ssmirror/ssmirror/cmd/internal/job"
	"github.com/ssmirror/ssmirror/sync"
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

// interruptedRun is the error of a sync run a signal stopped: one line that says what the run
// left behind (published or not, files kept) and that a rerun resumes, instead of the error of
// every file that was in flight. It unwraps to the signal, so exitCode gives 128+signal.
type interruptedRun struct {
	sig interrupted
	msg string
}

func (e *interruptedRun) Error() string { return e.msg }
func (e *interruptedRun) Unwrap() error { return e.sig }

// summarizeInterrupt turns the error of a run that ctx's signal stopped into an interruptedRun;
// any other error (or none) is returned as it is.
func summarizeInterrupt(ctx context.Context, rep *sync.Report, err error) error {
	var sig interrupted
	if err == nil || !errors.As(context.Cause(ctx), &sig) {
		return err
	}
	if errors.Is(err, sync.ErrLockLost) || errors.Is(err, sync.ErrStateChanged) {
		return err // another run took over: that, not the signal, is what the operator must know
	}
	return &interruptedRun{sig: sig, msg: sig.Error() + "; " + job.LeftBehind(rep)}
}

// summarizeFanOutInterrupt is summarizeInterrupt for a run with several targets: one line that
// says, target by target (names as given in names), what the signal left behind.
func summarizeFanOutInterrupt(ctx context.Context, names []string, fr *sync.FanOutReport, err error) error {
	var sig interrupted
	if err == nil || fr == nil || !errors.As(context.Cause(ctx), &sig) {
		return err
	}
	for _, t := range fr.Targets {
		if errors.Is(t.Err, sync.ErrLockLost) || errors.Is(t.Err, sync.ErrStateChanged) {
			return err // another run took over a target: the operator must see that
		}
	}
	return &interruptedRun{sig: sig, msg: sig.Error() + "; " + job.LeftBehindAll(names, fr)}
}
