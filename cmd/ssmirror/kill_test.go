package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
	"github.com/ssmirror/ssmirror/sync/audit"
)

// killTrialCount is how many runs each target gets killed in.
const killTrialCount = 20

// TestKillTrials kills ssmirror with SIGKILL at varying moments (during transfers, during
// metadata publication, before it starts) while upstream gains a version at every trial. After
// each kill the published mirror must verify (signatures, every item its metadata selects present
// with the listed size and sha256), and the following run must complete without fetching again
// anything that was already complete.
func TestKillTrials(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ssmirror 80 times")
	}
	bin := buildBinary(t)
	signer, keyringPath := testKeys(t)
	kr, err := sign.LoadKeyring(keyringPath)
	if err != nil {
		t.Fatal(err)
	}
	onEveryTarget(t, func(t *testing.T, target string, env []string, dst store.Target) {
		killTrials(t, bin, signer, kr, keyringPath, target, env, dst)
	})
}

type runSummary struct {
	OK      bool `json:"ok"`
	Fetched int  `json:"files_fetched"`
	Copied  int  `json:"files_copied"`
	Adopted int  `json:"files_adopted"`
}

func killTrials(t *testing.T, bin string, signer *sign.Signer, kr *sign.Keyring, keyringPath, target string, env []string, dst store.Target) {
	ctx := t.Context()
	filters := []string{"arch=amd64", "release~(jammy|noble)"}
	fs, _ := streams.ParseFilters(filters)
	published := false
	kills, verified := 0, 0
	for i := range killTrialCount {
		// Upstream gains version i: every trial has new content to fetch and publish.
		var versions []string
		for v := 0; v <= i+1; v++ {
			versions = append(versions, fmt.Sprintf("202507%02d", v+1))
		}
		cfg := streamtest.Config{
			Releases: []string{"jammy", "noble"}, Arches: []string{"amd64", "arm64"}, Versions: versions,
			Kernels: []string{"ga", "hwe"}, Bootloaders: true, Seed: 3,
			SquashfsSize: 2 << 20, InitrdSize: 512 << 10,
		}
		s, err := streamtest.Generate(cfg, signer)
		if err != nil {
			t.Fatal(err)
		}
		th := &throttled{h: s.Handler()}
		if i%2 == 1 {
			th.off.Store(true) // fast runs: kills land in metadata publication and state writes
		}
		up := httptest.NewServer(th)
		args := append([]string{"--keyring", keyringPath, "--max=1", "--json", up.URL + "/", target}, filters...)

		// The run that gets killed.
		delay := time.Duration((i*137)%600) * time.Millisecond
		if i%2 == 1 {
			delay = time.Duration((i*29)%120) * time.Millisecond
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		werr := cmd.Wait()
		if werr != nil {
			kills++
		}

		// What readers of the signed forms (MAAS reads index.sjson and the .sjson products files)
		// see now must hold together. The .json/.json.gpg pair of one document is two objects: a
		// kill between their writes leaves them disagreeing until the next run, which the full
		// audit after that run checks.
		if ok, _ := store.Exists(ctx, dst, "streams/v1/index.sjson"); ok {
			published = true
			checkPublished(t, signedFormsOnly{dst}, kr, fs, i, false)
			verified++
		} else if published {
			t.Fatalf("trial %d: the index disappeared", i)
		}

		// The following run completes and fetches only what was not complete.
		complete := completeFiles(t, dst, s)
		var out, errOut bytes.Buffer
		cmd = exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("trial %d: the run after the kill failed: %v\n%s", i, err, errOut.String())
		}
		var sum runSummary
		if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
			t.Fatalf("trial %d: summary: %v\n%s", i, err, out.String())
		}
		wanted := wantedFiles(t, s, fs)
		missing := 0
		for _, p := range wanted {
			if !complete[p] {
				missing++
			}
		}
		if sum.Fetched+sum.Copied > missing {
			t.Errorf("trial %d: the following run transferred %d files (fetched %d, copied %d); only %d were not complete", i, sum.Fetched+sum.Copied, sum.Fetched, sum.Copied, missing)
		}
		checkPublished(t, dst, kr, fs, i, true)
		up.Close()
	}
	t.Logf("%d kill trials, %d runs actually killed before finishing, published mirror verified after %d of them (before the first publication there is nothing to verify)", killTrialCount, kills, verified)
}

// checkPublished reads the published catalogue through the keyring and checks that every item
// its newest version of each selected product lists is present with the listed size and sha256.
// It also runs ssmirror's own audit (audit.Verify --deep).
func checkPublished(t *testing.T, dst store.Target, kr *sign.Keyring, fs streams.Filters, trial int, withAudit bool) {
	t.Helper()
	ctx := t.Context()
	cat, err := sync.LoadCatalogue(ctx, dst, "", sync.Verification{Keyring: kr}, 0, 4)
	if err != nil {
		t.Fatalf("trial %d: the published catalogue does not read back: %v", trial, err)
	}
	plan := sync.MakePlan(sync.PlanInput{Upstream: cat.Items(), Filters: fs, Max: 1, Held: sync.Held{}})
	for _, f := range plan.Fetch {
		info, err := dst.Stat(ctx, f.Path)
		if errors.Is(err, store.ErrNotExist) {
			t.Errorf("trial %d: dangling reference: %s is listed and selected but missing", trial, f.Path)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != f.Size {
			t.Errorf("trial %d: %s has %d bytes, listed %d", trial, f.Path, info.Size, f.Size)
		}
		if info.SHA256 != "" && info.SHA256 != f.SHA256 {
			t.Errorf("trial %d: %s recorded sha256 %s, listed %s", trial, f.Path, info.SHA256, f.SHA256)
		}
	}
	if !withAudit {
		return
	}
	rep, err := audit.Verify(ctx, dst, audit.VerifyOptions{Keyring: kr, Deep: true})
	if err != nil {
		t.Fatalf("trial %d: verify: %v", trial, err)
	}
	for _, p := range rep.Problems {
		if !p.Warning {
			t.Errorf("trial %d: verify: %s %s %s", trial, p.Path, p.Problem, p.Detail)
		}
	}
}

// signedFormsOnly shows a target as a reader of the clearsigned forms sees it: the unsigned
// .json and detached .json.gpg metadata files are not there.
type signedFormsOnly struct{ store.Target }

func (s signedFormsOnly) hidden(key string) bool {
	return strings.HasPrefix(key, "streams/") && (strings.HasSuffix(key, ".json") || strings.HasSuffix(key, ".json.gpg"))
}

func (s signedFormsOnly) Stat(ctx context.Context, key string) (store.Info, error) {
	if s.hidden(key) {
		return store.Info{}, fmt.Errorf("%s: %w", key, store.ErrNotExist)
	}
	return s.Target.Stat(ctx, key)
}

func (s signedFormsOnly) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if s.hidden(key) {
		return nil, fmt.Errorf("%s: %w", key, store.ErrNotExist)
	}
	return s.Target.Open(ctx, key, offset)
}

// wantedFiles lists the distinct paths the selection takes from stream s.
func wantedFiles(t *testing.T, s *streamtest.Stream, fs streams.Filters) []string {
	t.Helper()
	var items []streams.Item
	for _, id := range []string{streamtest.DownloadID, streamtest.BootloaderID} {
		doc, err := streams.ParseProducts(s.Files[streamtest.ProductsPath(id)])
		if err != nil {
			t.Fatal(err)
		}
		its, err := doc.Items()
		if err != nil {
			t.Fatal(err)
		}
		for i := range its {
			its[i].ContentID = id
		}
		items = append(items, its...)
	}
	plan := sync.MakePlan(sync.PlanInput{Upstream: items, Filters: fs, Max: 1, Held: sync.Held{}})
	var out []string
	for _, f := range plan.Fetch {
		out = append(out, f.Path)
	}
	return out
}

// completeFiles lists the content paths of s present in dst with the right size and content.
func completeFiles(t *testing.T, dst store.Target, s *streamtest.Stream) map[string]bool {
	t.Helper()
	ctx := t.Context()
	out := map[string]bool{}
	for p, size := range s.Content {
		info, err := dst.Stat(ctx, p)
		if err != nil || info.Size != size {
			continue
		}
		rc, err := dst.Open(ctx, p, 0)
		if err != nil {
			continue
		}
		v := store.NewVerifier(p, rc, store.PutOptions{Size: size, SHA256: s.SHA256(p)})
		_, err = bytes.NewBuffer(nil).ReadFrom(v)
		rc.Close()
		if err == nil && v.Check() == nil {
			out[p] = true
		}
	}
	return out
}

// onEveryTarget runs fn against each kind of target the binary publishes into, in parallel (the
// trials wait on throttled upstreams and chosen moments more than they work): a directory, and
// a bucket on a MinIO server of the test's own. target is what the command line names, env the
// environment the binary needs (nil: this process's), dst the same target opened here.
func onEveryTarget(t *testing.T, fn func(t *testing.T, target string, env []string, dst store.Target)) {
	targettest.Run(t, []targettest.Kind{targettest.Directory, targettest.MinIO}, targettest.Options{OwnServer: true, Parallel: true}, func(t *testing.T, tg *targettest.Target) {
		var env []string
		if tg.Server != nil {
			env = tg.Server.AWSEnv(t)
		}
		fn(t, tg.Location, env, tg.Store)
	})
}
