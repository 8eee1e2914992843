package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ssmirror/ssmirror/sync"
)

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
	msg := sig.Error()
	published := rep != nil && slices.ContainsFunc(rep.Stages, func(s sync.Stage) bool { return s.Name == "publish metadata" })
	switch {
	case rep == nil || rep.Plan == nil:
		msg += "; nothing written; rerun starts over"
	case published:
		msg += " after publishing; old files not yet deleted; rerun deletes them"
	default:
		kept := rep.Fetched + rep.Copied
		files := "files"
		if kept == 1 {
			files = "file"
		}
		if n := len(rep.MetadataWritten); n > 0 {
			msg += fmt.Sprintf(" while publishing (%d metadata files written, the rest not); %d %s kept; rerun completes the publish", n, kept, files)
		} else {
			msg += fmt.Sprintf("; nothing published; %d %s kept; rerun resumes", kept, files)
		}
	}
	return &interruptedRun{sig: sig, msg: msg}
}
