package sync_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ssmirror/ssmirror/sync"
)

// A state written before modes were recorded still keeps its mode: a curated mirror's
// published forms carry the mirror's "updated" stamps, and a verbatim run over it is refused.
// The refusal writes nothing, and the next allowed run records the mode.
func TestModeInferredFromOldState(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "release=jammy", "arch=amd64"), Max: 1}, Publishing: sync.Publishing{Signer: loadSigner(t, "test-signing-key.asc")}}
	run(t, up, dst, opts)

	statePath := filepath.Join(dir, filepath.FromSlash(sync.StateKey))
	data, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["mode"] == nil {
		t.Fatalf("no mode recorded: %s", data)
	}
	delete(doc, "mode")
	old, _ := json.Marshal(doc)
	if err := os.WriteFile(statePath, append(old, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}

	opts.Signer = nil
	opts.Verification.Keyring = up.keyring
	_, err = sync.Run(t.Context(), up.src, dst, opts)
	var mc *sync.ModeChangeError
	if !errors.As(err, &mc) || mc.Recorded.Publish != sync.ModeCurated || mc.Wanted.Publish != sync.ModeVerbatim {
		t.Fatalf("err = %v, want a refusal to publish the curated mirror verbatim", err)
	}
	if after, _ := os.ReadFile(statePath); string(after) != string(old)+"\n" {
		t.Error("the refused run rewrote the state")
	}
	opts.AllowModeChange = true
	run(t, up, dst, opts)
	st, err := sync.LoadState(t.Context(), dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode == nil || st.Mode.Publish != sync.ModeVerbatim {
		t.Errorf("mode after the allowed change: %+v", st.Mode)
	}
}
