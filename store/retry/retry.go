// Package retry is ssmirror's one retry policy: how many times an operation is tried, how long
// to wait between attempts, and which failures are not worth another attempt.
//
// Do runs an operation under a Policy; Sleep is the wait alone, for loops of another shape (the
// HTTP store's resumption of an interrupted body, whose count restarts with every byte
// received); NewSource wraps a store's read side so that its opens are retried.
//
// Whether a failure is permanent is decided by the Policy's Permanent function. The default,
// Permanent, knows the store package's errors (not found, permission, read-only, checksum,
// over limit), a cancelled context, a TLS certificate that does not verify, and any error that
// carries the answer itself: a backend marks a failure it knows to be permanent with Mark, and a
// caller adds its own (sync's ErrTooSlow) in its Policy.
//
// Who uses it: sync (sourcePolicy: whole-file opens through NewSource, range opens, metadata
// reads; and a download whose checksum is wrong, fetched again), httpstore (the pauses between
// attempts to resume a body), s3store (a request body resent after a checksum mismatch). The S3
// requests themselves are retried by the AWS SDK's retryer, configured in s3store/client.go and
// not wrapped again here.
package retry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// Policy says how an operation is tried again. The zero Policy tries once.
type Policy struct {
	// Attempts is how many times the operation is tried in all (at most); 0 or 1: once.
	Attempts int
	// Backoff is the pause after failed attempt n (1-based), before attempt n+1; nil: no pause.
	// Tests inject a zero backoff or run under testing/synctest.
	Backoff func(attempt int) time.Duration
	// Permanent says whether a failure is not worth another attempt; nil: the package's
	// Permanent.
	Permanent func(error) bool
	// Notify, when set, is called with each failure that will be tried again, before the pause
	// (for a log line).
	Notify func(attempt int, err error)
}

// Error is the failure of an operation tried more than once, or whose wait for another attempt
// was cut short by its context. It wraps the last attempt's error, or, when interrupted, the
// context's cause.
type Error struct {
	Attempts int   // attempts made
	Err      error // the last attempt's error
	// Interrupted, when set, is the cause of the context that ended the wait for another attempt.
	Interrupted error
}

func (e *Error) Error() string {
	if e.Interrupted != nil {
		return fmt.Sprintf("%v (interrupted while waiting to try again after: %v)", e.Interrupted, e.Err)
	}
	return fmt.Sprintf("%v (after %d attempts)", e.Err, e.Attempts)
}

// Unwrap returns the error the message leads with: the context's cause when interrupted, the last
// attempt's error otherwise.
func (e *Error) Unwrap() error {
	if e.Interrupted != nil {
		return e.Interrupted
	}
	return e.Err
}

// Do runs op until it succeeds, fails permanently, has been tried p.Attempts times, or ctx is
// done. The error returned is op's own when op was tried once or ctx was done when it failed,
// and an *Error otherwise.
func Do(ctx context.Context, p Policy, op func(context.Context) error) error {
	permanent := p.Permanent
	if permanent == nil {
		permanent = Permanent
	}
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return err
		case attempt >= p.Attempts || permanent(err):
			if attempt > 1 {
				return &Error{Attempts: attempt, Err: err}
			}
			return err
		}
		if p.Notify != nil {
			p.Notify(attempt, err)
		}
		var d time.Duration
		if p.Backoff != nil {
			d = p.Backoff(attempt)
		}
		if cause := Sleep(ctx, d); cause != nil {
			return &Error{Attempts: attempt, Err: err, Interrupted: cause}
		}
	}
}

// Sleep waits d, or until ctx is done: it then returns ctx's cause.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// Exponential returns a backoff that waits about base, 2×base, 4×base, … (at most max) after
// attempts 1, 2, 3, …, each jittered by ±25% so that clients that failed together do not come
// back together.
func Exponential(base, max time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < max; i++ {
			d *= 2
		}
		d = min(d, max)
		return d*3/4 + rand.N(d/2+1)
	}
}

// permanentError marks an error as permanent (Mark).
type permanentError struct{ error }

func (e permanentError) Unwrap() error   { return e.error }
func (e permanentError) Permanent() bool { return true }

// Mark returns err marked as permanent: Permanent reports true for it and for any error wrapping
// it. Its message and its chain (errors.Is, errors.As) are err's. Mark(nil) is nil.
func Mark(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Permanent is the default classification: a failure is permanent when it is, or wraps, a
// missing object, a refusal (fs.ErrPermission), a key no store accepts (store.ErrInvalidKey), a checksum mismatch, an object
// over a size limit, a cancelled or expired context, or an error with a Permanent() bool method
// that returns true (Mark), or a TLS certificate that does not verify (it will not verify on a
// second try, whichever backend met it). Anything else (a 5xx answer, a reset connection) may be
// transient.
func Permanent(err error) bool {
	for _, permanent := range []error{store.ErrNotExist, fs.ErrPermission, store.ErrInvalidKey, store.ErrChecksum, store.ErrOverLimit, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, permanent) {
			return true
		}
	}
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		return true
	}
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &badHost) || errors.As(err, &invalid)
}
