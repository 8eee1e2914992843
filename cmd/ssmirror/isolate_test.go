package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/streams"
)

// A fan-out target that cannot even be opened (a directory under a regular file, one under
// /proc) does not stop the others: the MinIO bucket and the good directory publish, the run exits
// 1 naming the bad targets, and the --json summary says per target what happened. Before, the
// whole run stopped at the open and no target got anything.
func TestFanOutTargetNotCreatable(t *testing.T) {
	bin := buildBinary(t)
	signer, keyringPath := testKeys(t)
	kr, err := sign.LoadKeyring(keyringPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := streamtest.Generate(streamtest.SmallConfig(), signer)
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(s.Handler())
	defer up.Close()
	filters := []string{"arch=amd64", "release=jammy"}
	fs, _ := streams.ParseFilters(filters)

	a := targettest.New(t, targettest.MinIO, targettest.Options{})
	dir := targettest.New(t, targettest.Directory, targettest.Options{})
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(blocker, "mirror")
	procBad := "/proc/ssmirror-test/mirror"
	code, stdout, stderr := runBinary(t, bin, a.Server.AWSEnv(t),
		append([]string{"--keyring", keyringPath, "--max=1", "--json", "--target", a.Location, "--target", bad, "--target", procBad, up.URL + "/", dir.Location}, filters...)...)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var sum fanOutSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout)
	}
	if len(sum.Targets) != 4 {
		t.Fatalf("summary has %d targets, want 4: %s", len(sum.Targets), stdout)
	}
	for i, want := range []struct {
		target string
		ok     bool
	}{{dir.Location, true}, {a.Location, true}, {bad, false}, {procBad, false}} {
		ts := sum.Targets[i]
		if ts.Target != want.target || ts.OK != want.ok {
			t.Errorf("target %d: %+v, want %s ok=%v", i, ts, want.target, want.ok)
		}
		if !want.ok && !strings.Contains(ts.Error, want.target) {
			t.Errorf("target %s's error does not name it: %q", want.target, ts.Error)
		}
	}
	checkPublished(t, dir.Store, kr, fs, 0, true)
	checkPublished(t, a.Store, kr, fs, 0, true)
}

// One site down (its S3 server stopped) and one disk full (a directory target on a tmpfs too
// small for the selection) while site A and a directory publish: the run exits 1 naming the two,
// the full disk publishes no metadata, and the others pass verify.
func TestFanOutSiteDownDiskFull(t *testing.T) {
	s := newSites(t)
	bin := buildBinary(t)
	fx := fixtureDir(t)
	keyring := filepath.Join(fx, "keys", "test-keyring.gpg")
	source := filepath.Join(fx, "stream")
	a, b := s.a.NewBucket(t, "site-a-up"), s.b.NewBucket(t, "site-b-down")
	aLoc := "s3://" + a + "/m?endpoint=" + s.a.Endpoint + "&profile=creds-a"
	bLoc := "s3://" + b + "/m?profile=site-b"
	s.b.Kill()

	full := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", full).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v: %s): the disk-full case needs root", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", full).Run() })
	fullLoc := filepath.Join(full, "mirror")
	dir := filepath.Join(t.TempDir(), "www")

	code, stdout, stderr := runBinary(t, bin, s.env(), "--keyring", keyring, "--json", "--min-rate=none",
		"--target", aLoc, "--target", bLoc, "--target", fullLoc, source, dir, "arch=amd64")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var sum fanOutSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || len(sum.Targets) != 4 {
		t.Fatalf("summary (%v): %s", err, stdout)
	}
	for i, ok := range []bool{true, true, false, false} {
		if sum.Targets[i].OK != ok {
			t.Errorf("target %s: ok=%v, want %v (%s)", sum.Targets[i].Target, sum.Targets[i].OK, ok, sum.Targets[i].Error)
		}
	}
	if _, err := os.Stat(filepath.Join(fullLoc, "streams", "v1", "index.sjson")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the full disk has an index: %v", err)
	}
	want := listDir(t, dir)
	samePublished(t, "site A beside a site down and a full disk", listBucket(t, s.a, a, "m/"), want)
	for _, loc := range []string{dir, aLoc} {
		if code, stdout, stderr := runBinary(t, bin, s.env(), "verify", "--keyring", keyring, loc); code != 0 {
			t.Errorf("verify %s: exit %d\n%s%s", loc, code, stdout, stderr)
		}
	}
}

// kill -9 at random moments of a fan-out to two S3 services with their own credentials (each
// named by one URL) and a directory leaves every target consistent, and the reruns converge.
func TestFanOutTwoServicesKillTrials(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ssmirror many times")
	}
	s := newSites(t)
	bin := buildBinary(t)
	signer, keyringPath := testKeys(t)
	kr, err := sign.LoadKeyring(keyringPath)
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.a.NewBucket(t, "kill-site-a"), s.b.NewBucket(t, "kill-site-b")
	aOpts, bOpts := s3store.Options{}, s3store.Options{}
	aStore := s3store.New(targettest.Client(t, s.a, &aOpts), a, "m/", aOpts)
	bStore := s3store.New(targettest.Client(t, s.b, &bOpts), b, "m/", bOpts)
	dir := targettest.New(t, targettest.Directory, targettest.Options{})
	killTrials(t, bin, signer, kr, keyringPath,
		[]string{"s3://" + a + "/m?endpoint=" + s.a.Endpoint + "&profile=creds-a", "s3://" + b + "/m?profile=site-b", dir.Location},
		s.env(), []store.Target{aStore, bStore, dir.Store}, 8)
}
