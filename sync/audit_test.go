package sync_test

import (
	"testing"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync/audit"
)

// verify audits dst (sync/audit), failing the test when the target cannot be read.
func verify(t *testing.T, dst store.Target, opts audit.VerifyOptions) *audit.VerifyReport {
	t.Helper()
	rep, err := audit.Verify(t.Context(), dst, opts)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}
