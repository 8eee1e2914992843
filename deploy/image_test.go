//go:build linux

package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestImageBuiltAndRun builds the runtime stage of the Dockerfile from a static binary built
// here (BINARY=prebuilt: FROM scratch, no registry), with buildah and storage of its own, then
// runs the image as its configured user (65532): `ssmirror version`, and a sync of the committed
// fixture stream (mounted read-only) into a directory mounted from the host. The mirrored files
// must be owned by uid 65532 and the mirror must verify. Without buildah the test skips, unless
// CI=true (.ci/run installs it).
func TestImageBuiltAndRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a container image")
	}
	buildahBin := needTool(t, "buildah")
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}

	// The build context: the Dockerfile and deploy/prebuilt/ only.
	ctxDir := t.TempDir()
	prebuilt := filepath.Join(ctxDir, "deploy", "prebuilt")
	if err := os.MkdirAll(prebuilt, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(prebuilt, "ssmirror"), "./cmd/ssmirror")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "deploy", "Dockerfile"), dockerfile, 0o644); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("the CA bundle the image carries: %v", err)
	}
	if err := os.WriteFile(filepath.Join(prebuilt, "ca-certificates.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}

	// buildah with its own storage (vfs: no overlay mounts to leave behind).
	store := t.TempDir()
	buildah := func(args ...string) string {
		t.Helper()
		all := append([]string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs"}, args...)
		cmd := exec.Command(buildahBin, all...)
		cmd.Env = append(os.Environ(), "BUILDAH_ISOLATION=chroot")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	const image = "localhost/ssmirror:test"
	buildah("bud", "--isolation", "chroot", "--pull-never", "--build-arg", "BINARY=prebuilt",
		"-f", filepath.Join(ctxDir, "deploy", "Dockerfile"), "-t", image, ctxDir)
	if got := strings.TrimSpace(buildah("inspect", "--format", "{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}", image)); got != "65532:65532 [/usr/local/bin/ssmirror]" {
		t.Errorf("image user and entrypoint: %q", got)
	}
	ctr := strings.TrimSpace(buildah("from", "--pull-never", image))
	t.Cleanup(func() {
		exec.Command(buildahBin, "--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs", "rm", ctr).Run()
	})

	out := buildah("run", "--isolation", "chroot", ctr, "--", "/usr/local/bin/ssmirror", "version")
	if !strings.HasPrefix(out, "ssmirror ") || !strings.Contains(out, "go1.") {
		t.Errorf("ssmirror version in the image: %q", out)
	}

	// A small sync: the fixture stream, read-only, into a host directory.
	outDir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(outDir, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	testdata := filepath.Join(repo, "testdata")
	out = buildah("run", "--isolation", "chroot", "-v", testdata+":/fixture:ro", "-v", outDir+":/out", ctr, "--",
		"/usr/local/bin/ssmirror", "sync", "--keyring", "/fixture/keys/test-keyring.gpg", "/fixture/stream", "/out/mirror")
	t.Logf("sync in the image:\n%s", out)
	if !strings.Contains(out, "60 fetched") {
		t.Errorf("sync in the image did not fetch the fixture's 60 files:\n%s", out)
	}
	mirror := filepath.Join(outDir, "mirror")
	for _, p := range []string{"streams/v1/index.json", "streams/v1/index.sjson", ".ssmirror/state.json"} {
		fi, err := os.Stat(filepath.Join(mirror, p))
		if err != nil {
			t.Errorf("mirror: %v", err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65532 || st.Gid != 65532 {
			t.Errorf("%s is owned by %d:%d, want 65532:65532 (the image's user)", p, st.Uid, st.Gid)
		}
	}
	// The mirror the image wrote verifies, checked by the same binary outside the image.
	verify := exec.Command(filepath.Join(prebuilt, "ssmirror"), "verify", "--keyring", filepath.Join(testdata, "keys", "test-keyring.gpg"), mirror)
	if out, err := verify.CombinedOutput(); err != nil {
		t.Errorf("verify the image's mirror: %v\n%s", err, out)
	}
}
