package main

import (
	"context"
	"errors"
	"io"
)

// runVerify audits a published mirror. (Being written: see the verify issue.)
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("verify: not implemented yet")
}

// runGC runs the deferred garbage collection on demand. (Being written.)
func runGC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("gc: not implemented yet")
}
