package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// bytesServed counts the body bytes an upstream HTTP server sends, per path.
type bytesServed struct {
	h     http.Handler
	mu    gosync.Mutex
	bytes map[string]int64
}

func (b *bytesServed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	h := b.h
	b.mu.Unlock()
	h.ServeHTTP(&countingResponse{ResponseWriter: w, b: b, path: strings.TrimPrefix(r.URL.Path, "/")}, r)
}

func (b *bytesServed) of(path string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes[path]
}

func (b *bytesServed) set(h http.Handler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.h = h
}

func (b *bytesServed) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.bytes)
}

type countingResponse struct {
	http.ResponseWriter
	b    *bytesServed
	path string
}

func (c *countingResponse) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.b.mu.Lock()
	c.b.bytes[c.path] += int64(n)
	c.b.mu.Unlock()
	return n, err
}

type fanOutSummary struct {
	runSummary
	Error         string `json:"error"`
	Target        string `json:"target"`
	UpstreamBytes *int64 `json:"upstream_bytes"`
	Targets       []struct {
		OK      bool   `json:"ok"`
		Error   string `json:"error"`
		Target  string `json:"target"`
		Fetched int    `json:"files_fetched"`
	} `json:"targets"`
}

// TestFanOutCommand runs the binary with three targets (two buckets of one MinIO server with
// --target, a directory as TARGET): each target is published and verifies on its own, upstream
// serves each content byte once, and the next run moves nothing. A target that cannot be
// written (no such bucket) or is locked by another run fails alone: the others publish, the run
// exits 1 naming it, and the --json summary and the metrics say per target what happened.
func TestFanOutCommand(t *testing.T) {
	bin := buildBinary(t)
	signer, keyringPath := testKeys(t)
	kr, err := sign.LoadKeyring(keyringPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := streamtest.Config{
		Releases: []string{"jammy", "noble"}, Arches: []string{"amd64", "arm64"}, Versions: []string{"20250701", "20250702"},
		Kernels: []string{"ga", "hwe"}, Bootloaders: true, Seed: 5, SquashfsSize: 3 << 20, InitrdSize: 512 << 10,
	}
	s, err := streamtest.Generate(cfg, signer)
	if err != nil {
		t.Fatal(err)
	}
	served := &bytesServed{h: s.Handler(), bytes: map[string]int64{}}
	up := httptest.NewServer(served)
	defer up.Close()
	filters := []string{"arch=amd64", "release~(jammy|noble)"}
	fs, _ := streams.ParseFilters(filters)
	wanted := wantedFiles(t, s, fs)

	a := targettest.New(t, targettest.MinIO, targettest.Options{})
	bBucket := a.Server.NewBucket(t, "fanout-cmd-b")
	b := s3store.New(a.Client, bBucket, "mirror/", a.S3)
	bLoc := "s3://" + bBucket + "/mirror"
	dir := targettest.New(t, targettest.Directory, targettest.Options{})
	env := a.Server.AWSEnv(t)
	args := func(extra ...string) []string {
		return append(append([]string{"--keyring", keyringPath, "--max=1", "--json", "--target", a.Location, "--target", bLoc}, extra...),
			append([]string{up.URL + "/", dir.Location}, filters...)...)
	}
	dsts := []store.Target{dir.Store, a.Store, b}

	code, stdout, stderr := runBinary(t, bin, env, args()...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var sum fanOutSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout)
	}
	var wantBytes int64
	for _, p := range wanted {
		wantBytes += s.Content[p]
		if n := served.of(p); n != s.Content[p] {
			t.Errorf("upstream served %d bytes of %s, want %d (once for the three targets)", n, p, s.Content[p])
		}
	}
	if !sum.OK || len(sum.Targets) != 3 || sum.UpstreamBytes == nil || *sum.UpstreamBytes != wantBytes {
		t.Fatalf("summary: %s", stdout)
	}
	for i, want := range []string{dir.Location, a.Location, bLoc} {
		if ts := sum.Targets[i]; !ts.OK || ts.Target != want || ts.Fetched != len(wanted) {
			t.Errorf("target %d in the summary: %+v, want %s with %d files fetched", i, ts, want, len(wanted))
		}
	}
	for _, dst := range dsts {
		checkPublished(t, dst, kr, fs, 0, true)
	}

	// Up to date: the catalogue is read, no content.
	served.reset()
	if code, stdout, stderr = runBinary(t, bin, env, args()...); code != 0 {
		t.Fatalf("up-to-date run: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, p := range wanted {
		if n := served.of(p); n != 0 {
			t.Errorf("up-to-date run: upstream served %d bytes of %s", n, p)
		}
	}

	t.Run("a target given twice", func(t *testing.T) {
		code, _, stderr := runBinary(t, bin, env, args("--target", dir.Location+"/")...)
		if code != 2 || !strings.Contains(stderr, "given twice") {
			t.Fatalf("exit %d, want 2 (usage)\nstderr: %s", code, stderr)
		}
	})

	t.Run("no such bucket", func(t *testing.T) {
		out := t.TempDir()
		missing := "s3://no-such-bucket-fanout-cmd/mirror"
		code, stdout, stderr := runBinary(t, bin, env, args("--target", missing, "--metrics-textfile", out+"/m.prom")...)
		if code != 1 || !strings.Contains(stderr, missing) || !strings.Contains(stderr, "1 of 4 targets failed") {
			t.Fatalf("exit %d, want 1 naming %s\nstderr: %s", code, missing, stderr)
		}
		var sum fanOutSummary
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
			t.Fatalf("summary: %v\n%s", err, stdout)
		}
		if sum.OK || len(sum.Targets) != 4 || sum.Targets[3].OK || !strings.Contains(sum.Targets[3].Error, "NoSuchBucket") || !sum.Targets[0].OK || !sum.Targets[2].OK {
			t.Errorf("summary: %s", stdout)
		}
		prom, err := os.ReadFile(out + "/m.prom")
		if err != nil {
			t.Fatal(err)
		}
		if !regexpMatch(t, `(?m)^ssmirror_last_run_error\{target="`+missing+`"\} 1$`, string(prom)) ||
			!regexpMatch(t, `(?m)^ssmirror_last_run_error\{target="`+bLoc+`"\} 0$`, string(prom)) {
			t.Errorf("metrics do not say which target failed:\n%s", prom)
		}
		for _, dst := range dsts {
			checkPublished(t, dst, kr, fs, 0, true)
		}
	})

	t.Run("one target locked", func(t *testing.T) {
		lock, _, err := sync.AcquireLock(t.Context(), dir.Store, sync.LockOptions{TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Release()
		// Upstream gains a version: the targets that are not locked publish it.
		cfg2 := cfg
		cfg2.Versions = append(cfg2.Versions, "20250703")
		s2, err := streamtest.Generate(cfg2, signer)
		if err != nil {
			t.Fatal(err)
		}
		served.set(s2.Handler())
		defer served.set(s.Handler())
		code, stdout, stderr := runBinary(t, bin, env, args()...)
		if code != 1 || !strings.Contains(stderr, dir.Location) || !strings.Contains(stderr, "locked by another ssmirror run") {
			t.Fatalf("exit %d, want 1 naming the locked %s\nstdout: %s\nstderr: %s", code, dir.Location, stdout, stderr)
		}
		for _, dst := range []store.Target{a.Store, b} {
			checkPublished(t, dst, kr, fs, 1, true)
			if ok, _ := store.Exists(t.Context(), dst, "noble/amd64/20250703/squashfs"); !ok {
				t.Errorf("%s did not publish the new version", store.Describe(dst))
			}
		}
		if ok, _ := store.Exists(t.Context(), dir.Store, "noble/amd64/20250703/squashfs"); ok {
			t.Error("the locked target was written")
		}
		if _, err := os.Stat(filepath.Join(dir.Dir, "streams")); err != nil {
			t.Fatal(err)
		}
	})
}
