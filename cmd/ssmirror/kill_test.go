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
	"github.com/ssmirror/ssmirror/store/s3store"
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
		killTrials(t, bin, signer, kr, keyringPath, []string{target}, env, []store.Target{dst}, killTrialCount)
	})
}

// TestFanOutKillTrials is TestKillTrials for a run publishing to three targets at once (two
// buckets of one MinIO server and a directory): after each kill every target's published mirror
// must verify on its own, and the following run must complete in every target without fetching
// again anything a target already held complete.
func TestFanOutKillTrials(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ssmirror 24 times")
	}
	bin := buildBinary(t)
	signer, keyringPath := testKeys(t)
	kr, err := sign.LoadKeyring(keyringPath)
	if err != nil {
		t.Fatal(err)
	}
	a := targettest.New(t, targettest.MinIO, targettest.Options{OwnServer: true})
	bucket := a.Server.NewBucket(t, "fanout-b")
	b := s3store.New(a.Client, bucket, "mirror/", a.S3)
	dir := targettest.New(t, targettest.Directory, targettest.Options{})
	killTrials(t, bin, signer, kr, keyringPath, []string{a.Location, "s3://" + bucket + "/mirror", dir.Location},
		a.Server.AWSEnv(t), []store.Target{a.Store, b, dir.Store}, 12)
}

type runSummary struct {
	OK         bool `json:"ok"`
	Fetched    int  `json:"files_fetched"`
	Copied     int  `json:"files_copied"`
	CopiedFrom int  `json:"files_copied_from"`
	Adopted    int  `json:"files_adopted"`
	// Targets are a fan-out run's targets.
	Targets []runSummary `json:"targets"`
}

// killTrials kills runs publishing to targets (the first positional, the others with --target;
// dsts the same targets opened here) and checks each target after each kill.
func killTrials(t *testing.T, bin string, signer *sign.Signer, kr *sign.Keyring, keyringPath string, targets []string, env []string, dsts []store.Target, trials int) {
	ctx := t.Context()
	filters := []string{"arch=amd64", "release~(jammy|noble)"}
	fs, _ := streams.ParseFilters(filters)
	published := make([]bool, len(dsts))
	kills, verified := 0, 0
	for i := range trials {
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
		args := []string{"--keyring", keyringPath, "--max=1", "--json"}
		for _, more := range targets[1:] {
			args = append(args, "--target", more)
		}
		args = append(append(args, up.URL+"/", targets[0]), filters...)

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
		anyPublished := false
		for j, dst := range dsts {
			if ok, _ := store.Exists(ctx, dst, "streams/v1/index.sjson"); ok {
				anyPublished = true
				checkPublished(t, signedFormsOnly{dst}, kr, fs, i, false)
			} else if published[j] {
				t.Fatalf("trial %d: the index disappeared from %s", i, targets[j])
			} else {
				continue
			}
			published[j] = true
		}
		if anyPublished {
			verified++
		}

		// The following run completes and fetches only what was not complete.
		complete := make([]map[string]bool, len(dsts))
		for j, dst := range dsts {
			complete[j] = completeFiles(t, dst, s)
		}
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
		sums := []runSummary{sum}
		if len(dsts) > 1 {
			if len(sum.Targets) != len(dsts) || !sum.OK {
				t.Fatalf("trial %d: summary of the run after the kill: %s", i, out.String())
			}
			sums = sum.Targets
		}
		for j, dst := range dsts {
			missing := 0
			for _, p := range wanted {
				if !complete[j][p] {
					missing++
				}
			}
			ts := sums[j]
			if moved := ts.Fetched + ts.Copied + ts.CopiedFrom; moved > missing {
				t.Errorf("trial %d: %s: the following run transferred %d files (fetched %d, copied %d, from another target %d); only %d were not complete", i, targets[j], moved, ts.Fetched, ts.Copied, ts.CopiedFrom, missing)
			}
			checkPublished(t, dst, kr, fs, i, true)
		}
		up.Close()
	}
	t.Logf("%d kill trials, %d runs actually killed before finishing, published mirror verified after %d of them (before the first publication there is nothing to verify)", trials, kills, verified)
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
