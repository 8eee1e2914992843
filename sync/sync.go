// Package sync mirrors a SimpleStreams source into a target store: read and verify the source
// catalogue, plan (a pure function of what upstream offers and what the mirror holds), transfer
// each missing path once, in parallel, verified while streaming, publish metadata (products
// files, then the index), record the state, and only then delete what nothing has referenced for
// longer than the grace period.
package sync

import (
	"context"

	"github.com/ssmirror/ssmirror/store"
)

// Run mirrors src into dst: it reads the catalogue and the target, plans, transfers what the
// plan fetches, publishes the metadata, records the state and deletes what the plan releases.
// The stages are the methods of run; run.do (run.go) takes them in order.
func Run(ctx context.Context, src store.Source, dst store.Target, opts Options) (*Report, error) {
	if opts.NoItemDownload && opts.Signer != nil {
		return nil, ErrMetadataOnlyCurated
	}
	h := newHub(ctx, src, []store.Target{dst}, opts)
	defer h.wait()
	return h.runs[0].do(ctx)
}

// newRun makes a run of its own (a hub of one target).
func newRun(src store.Source, dst store.Target, opts Options) *run {
	return newHub(context.Background(), src, []store.Target{dst}, opts).runs[0]
}
