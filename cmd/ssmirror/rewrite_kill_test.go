package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// TestRewriteKillTrials (issue 24, fault 2): in each trial the mirror is published, then
// upstream rewrites every file of that version at the same paths (other bytes, re-signed
// products), and the run that follows is killed (SIGKILL) at a varying
// moment, on a slowed upstream. After each kill, a reader of the published metadata (the signed
// forms, as MAAS reads them) checks every file it names, reading its bytes: none may differ from
// what the metadata promises. The run is refused before it writes anything (ErrRewritten); the
// old code overwrote the published files first.
func TestRewriteKillTrials(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ssmirror 32 times")
	}
	bin := buildBinary(t)
	signer, keyringPath := testKeys(t)
	kr, err := sign.LoadKeyring(keyringPath)
	if err != nil {
		t.Fatal(err)
	}
	const trials = 8
	onEveryTarget(t, func(t *testing.T, target string, env []string, dst store.Target) {
		filters := []string{"arch=amd64", "release~(jammy|noble)"}
		fs, _ := streams.ParseFilters(filters)
		bad, killed := 0, 0
		for i := range trials {
			v := fmt.Sprintf("202508%02d", i+1)
			gen := func(seed int64, versions ...string) *streamtest.Stream {
				s, err := streamtest.Generate(streamtest.Config{
					Releases: []string{"jammy", "noble"}, Arches: []string{"amd64"}, Versions: versions,
					Kernels: []string{"ga", "hwe"}, Bootloaders: true, Seed: seed,
					SquashfsSize: 2 << 20, InitrdSize: 512 << 10,
				}, signer)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			run := func(s *streamtest.Stream, slow bool, kill time.Duration) error {
				th := &throttled{h: s.Handler()}
				th.off.Store(!slow)
				up := httptest.NewServer(th)
				defer up.Close()
				args := append([]string{"--keyring", keyringPath, "--max=1", "--json", up.URL + "/", target}, filters...)
				cmd := exec.Command(bin, args...)
				cmd.Env = env
				if kill < 0 {
					out, err := cmd.CombinedOutput()
					if err != nil {
						return fmt.Errorf("%w: %s", err, out)
					}
					return nil
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(kill)
				cmd.Process.Kill()
				return cmd.Wait()
			}
			// Published: version v, seed 3 (its paths are new to the target).
			if err := run(gen(3, v), false, -1); err != nil {
				t.Fatalf("trial %d: publishing: %v", i, err)
			}
			// Rewritten in place (seed 4); killed after 0 to 1.4 s.
			if err := run(gen(4, v), true, time.Duration(i*200)*time.Millisecond); err != nil {
				killed++
			}
			wrong, err := publishedWrong(t.Context(), signedFormsOnly{dst}, kr, fs)
			if err != nil {
				t.Fatalf("trial %d: %v", i, err)
			}
			if len(wrong) > 0 {
				bad++
				t.Errorf("trial %d: %d files are not what the published metadata names (e.g. %s)", i, len(wrong), wrong[0])
			}
			// The operator takes the new content by deleting the objects; a later trial's
			// version is new anyway.
		}
		t.Logf("%d trials, %d runs ended by the kill or refused, %d with wrong bytes under the published metadata", trials, killed, bad)
	})
}

// publishedWrong reads the published catalogue through the keyring and then every file its
// newest version of each selected product names, and returns the paths whose bytes differ from
// what it lists (size or sha256).
func publishedWrong(ctx context.Context, dst store.Target, kr *sign.Keyring, fs streams.Filters) ([]string, error) {
	cat, err := sync.LoadCatalogue(ctx, dst, "", sync.Verification{Keyring: kr}, 0, 4)
	if err != nil {
		return nil, fmt.Errorf("the published catalogue does not read back: %w", err)
	}
	plan := sync.MakePlan(sync.PlanInput{Upstream: cat.Items(), Filters: fs, Max: 1, Held: sync.Held{}})
	var wrong []string
	for _, f := range plan.Fetch {
		rc, err := dst.Open(ctx, f.Path, 0)
		if errors.Is(err, store.ErrNotExist) {
			wrong = append(wrong, f.Path+" (missing)")
			continue
		}
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
			wrong = append(wrong, f.Path)
		}
	}
	return wrong, nil
}
