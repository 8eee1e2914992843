package sync_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/memstore"
	"github.com/ssmirror/ssmirror/sync"
)

// bufferTarget is a target that says it holds part buffers of its own (store.BufferHolder).
type bufferTarget struct {
	*memstore.Store
	budget int64
}

func (b bufferTarget) BufferBudget() int64 { return b.budget }
func (b bufferTarget) SharedBuffers() any  { return nil }

// TestOnTransfer: Options.OnTransfer hears of the transfer stage once, with the buffers it may
// hold (the ranged-download budget and the target's BufferBudget), and its done function is
// called when the stage is over; a run with nothing to fetch has no transfer stage.
func TestOnTransfer(t *testing.T) {
	ctx := t.Context()
	src := memstore.New()
	for k, v := range map[string]string{
		"streams/v1/index.json": `{"format": "index:1.0", "index": {"c": {"format": "products:1.0", "path": "streams/v1/c.json", "products": ["p"]}}}`,
		"streams/v1/c.json":     `{"format": "products:1.0", "content_id": "c", "products": {"p": {"versions": {"1": {"items": {"f": {"path": "x/f", "size": 3, "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}}}}}}}`,
		"x/f":                   "abc",
	} {
		if _, err := store.PutBytes(ctx, src, k, []byte(v), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const parts = 32 << 20
	for _, c := range []struct {
		streams int
		want    int64
	}{
		{0, parts + sync.DefaultRangeFiles*sync.DefaultRangeStreams*sync.DefaultRangeChunk},
		{1, parts}, // no ranged downloads: only the target's buffers
	} {
		dst := bufferTarget{memstore.New(), parts}
		var calls []int64
		var ended int
		opts := sync.Options{
			Selection: sync.Selection{StartPath: "streams/v1/index.json"},
			Tuning:    sync.Tuning{RangeStreams: c.streams},
			Hooks: sync.Hooks{OnTransfer: func(buffers int64) func() {
				calls = append(calls, buffers)
				return func() { ended++ }
			}},
		}
		if _, err := sync.Run(ctx, src, dst, opts); err != nil {
			t.Fatal(err)
		}
		if len(calls) != 1 || calls[0] != c.want || ended != 1 {
			t.Errorf("streams %d: OnTransfer called with %v, done %d times; want once with %d, done once", c.streams, calls, ended, c.want)
		}
		// Again: everything is there, nothing to transfer.
		calls, ended = nil, 0
		if _, err := sync.Run(ctx, src, dst, opts); err != nil {
			t.Fatal(err)
		}
		if len(calls) != 0 || ended != 0 {
			t.Errorf("streams %d, nothing to fetch: OnTransfer called with %v, done %d times", c.streams, calls, ended)
		}
	}
}

// TestNoProcessSettings: the library changes no process-wide setting (the memory limit, GC
// percent, max threads...): that is the command's business (cmd/ssmirror's limitTransferMemory).
func TestNoProcessSettings(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "runtime/debug" {
				t.Errorf("%s imports runtime/debug: process-wide settings belong to the command", name)
			}
		}
	}
}
