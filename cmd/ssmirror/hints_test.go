package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// TestFlagHints: the libraries' errors name no flag of this command; report adds the flag.
func TestFlagHints(t *testing.T) {
	for _, tc := range []struct {
		err  error
		flag string
	}{
		{&sync.EmptySelectionError{}, "--allow-empty"},
		{sync.ErrNoKeyring, "--keyring"},
		{sync.ErrTooLarge, "--max-file-size"},
		{sync.ErrTooSlow, "--min-rate"},
		{s3store.ErrBufferBudget, "--upload-buffers"},
		{store.ErrOverLimit, "--metadata-max-size"},
		{sync.ErrMetadataOnlyCurated, "--signing-key"},
	} {
		if strings.Contains(tc.err.Error(), "--") {
			t.Errorf("library error %q names a flag", tc.err)
		}
		wrapped := fmt.Errorf("fetching a/b: %w", tc.err)
		got := withHint(wrapped)
		if !strings.HasPrefix(got, wrapped.Error()) || !strings.Contains(got, tc.flag) {
			t.Errorf("withHint(%q) = %q, want the message and %s", wrapped, got, tc.flag)
		}
	}
	if got := withHint(errors.New("plain")); got != "plain" {
		t.Errorf("withHint(plain) = %q", got)
	}
	multi := fmt.Errorf("refusing 2 item(s) %w (8 bytes); nothing was written:\n  a\n  b", sync.ErrTooLarge)
	if got, want := withHint(multi), multi.Error()+"\nthe limit is --max-file-size"; got != want {
		t.Errorf("withHint(multi-line) = %q, want %q", got, want)
	}
}
