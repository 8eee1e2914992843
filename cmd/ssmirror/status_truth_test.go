package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testserver"
)

// statusJSON is what the tests read of status --json.
type statusJSON struct {
	OK         bool   `json:"ok"`
	Error      string `json:"error"`
	FirstSync  bool   `json:"first_sync_in_progress"`
	Consistent bool   `json:"consistent"`
	Missing    []string
	Mode       *struct {
		Publish    string `json:"publish"`
		SigningKey string `json:"signing_key"`
	} `json:"mode"`
	Kept       []struct{ Path string } `json:"kept_for_next_run"`
	Unrecorded int                     `json:"unrecorded_files"`
	Pending    []struct{ Path string } `json:"pending_deletion"`
	Lock       *struct {
		Host string `json:"host"`
		PID  int    `json:"pid"`
	} `json:"lock"`
}

func statusOf(t *testing.T, bin string, env []string, args ...string) (int, statusJSON, string) {
	t.Helper()
	code, stdout, stderr := runBinary(t, bin, env, append([]string{"status", "--json"}, args...)...)
	var st statusJSON
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("status --json %v printed no JSON (exit %d): %v\nstdout: %s\nstderr: %s", args, code, err, stdout, stderr)
	}
	return code, st, stderr
}

// status tells the truth in the states where it mattered most (issue 21): during a first sync
// it shows the held lock (it said "nothing was mirrored there"), after an interrupted first sync
// the files fetched are kept for the next run (it listed them as waiting for deletion), the
// mode is shown, a file deleted behind the mirror's back makes it inconsistent, --max-age turns
// staleness and inconsistency into exit 1, and --json prints JSON on every path.
func TestStatusTellsTheTruth(t *testing.T) {
	bin := buildBinary(t)
	t.Run("directory", func(t *testing.T) { statusTruth(t, bin, filepath.Join(t.TempDir(), "m"), nil, "") })
	t.Run("minio", func(t *testing.T) {
		srv := testserver.Shared(t, testserver.KindMinIO)
		loc := "s3://" + srv.NewBucket(t, "status-truth") + "/m"
		statusTruth(t, bin, loc, srv.AWSEnv(t), "")
	})
}

func statusTruth(t *testing.T, bin, target string, env []string, _ string) {
	signer, keyringPath := testKeys(t)
	s, err := streamtest.Generate(streamtest.SmallConfig(), signer)
	if err != nil {
		t.Fatal(err)
	}
	// The upstream serves every file but one, which it holds until the test lets it go.
	release := make(chan struct{})
	var held string
	for p := range s.Content {
		if strings.HasSuffix(p, "/squashfs") && strings.Contains(p, "jammy/amd64/20250718") {
			held = p
		}
	}
	inner := s.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimPrefix(r.URL.Path, "/") == held {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		inner.ServeHTTP(w, r)
	}))
	defer up.Close()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	isDir := !strings.HasPrefix(target, "s3://")
	args := []string{"--keyring", keyringPath, "--max=1", "--min-rate=none", up.URL + "/", target, "release=jammy", "arch=amd64"}

	// A first sync in progress.
	sync := exec.Command(bin, args...)
	sync.Env = append(os.Environ(), env...)
	if err := sync.Start(); err != nil {
		t.Fatal(err)
	}
	var st statusJSON
	var code int
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, st, _ = statusOf(t, bin, env, target)
		if st.FirstSync || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 0 || !st.FirstSync || st.Lock == nil || st.Lock.PID != sync.Process.Pid {
		t.Fatalf("during the first sync: exit %d, %+v", code, st)
	}
	if _, stdout, _ := runBinary(t, bin, env, "status", target); !strings.Contains(stdout, "first sync in progress: lock held by host") {
		t.Errorf("text status during the first sync: %s", stdout)
	}

	// Interrupted: what arrived is kept for the next run (S3: recorded as kept; a directory
	// records its files only with the publish: not recorded), not waiting for deletion.
	time.Sleep(time.Second) // let the other files arrive
	if err := sync.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	_ = sync.Wait()
	code, st, _ = statusOf(t, bin, env, target)
	if code != 0 || len(st.Pending) != 0 || st.FirstSync || (isDir && st.Unrecorded == 0) || (!isDir && len(st.Kept) == 0) {
		t.Fatalf("after the interrupted first sync: exit %d, %+v", code, st)
	}
	_, stdout, _ := runBinary(t, bin, env, "status", target)
	if want := "kept for the next run:"; isDir {
		want = "not recorded:"
		if !strings.Contains(stdout, want) {
			t.Errorf("text status after the interrupted first sync lacks %q:\n%s", want, stdout)
		}
	} else if !strings.Contains(stdout, want) {
		t.Errorf("text status after the interrupted first sync lacks %q:\n%s", want, stdout)
	}
	if !strings.Contains(stdout, "waiting for deletion: nothing") {
		t.Errorf("text status after the interrupted first sync lists files for deletion:\n%s", stdout)
	}

	// The rerun publishes; status shows the mode and a consistent mirror.
	close(release)
	released = true
	if code, stdout, stderr := runBinary(t, bin, env, args...); code != 0 {
		t.Fatalf("rerun: exit %d\n%s%s", code, stdout, stderr)
	}
	code, st, _ = statusOf(t, bin, env, target)
	if code != 0 || !st.OK || !st.Consistent || st.Mode == nil || st.Mode.Publish != "verbatim" || len(st.Kept) != 0 || st.Unrecorded != 0 {
		t.Fatalf("after the rerun: exit %d, %+v", code, st)
	}
	if code, _, _ := statusOf(t, bin, env, "--max-age", "1h", target); code != 0 {
		t.Errorf("--max-age 1h after a fresh run: exit %d", code)
	}
	time.Sleep(1100 * time.Millisecond)
	if code, st, _ := statusOf(t, bin, env, "--max-age", "1s", target); code != 1 || st.OK || !strings.Contains(st.Error, "more than --max-age") {
		t.Errorf("--max-age 1s, a second later: exit %d, %+v", code, st)
	}
	if !isDir {
		return
	}

	// A file deleted behind the mirror's back.
	if err := os.Remove(filepath.Join(target, filepath.FromSlash(held))); err != nil {
		t.Fatal(err)
	}
	code, st, _ = statusOf(t, bin, env, target)
	if code != 0 || st.Consistent || len(st.Missing) != 1 || st.Missing[0] != held {
		t.Errorf("after a deletion behind its back: exit %d, %+v", code, st)
	}
	if code, _, _ := statusOf(t, bin, env, "--max-age", "1h", target); code != 1 {
		t.Errorf("--max-age with a missing file: exit %d, want 1", code)
	}

	// No mirror: JSON all the same.
	if code, st, _ := statusOf(t, bin, env, t.TempDir()); code != 1 || st.OK || !strings.Contains(st.Error, "holds no ssmirror mirror") {
		t.Errorf("empty directory: exit %d, %+v", code, st)
	}
}

// A missing bucket, a wrong secret and an endpoint with nothing listening are said as such, not
// as "nothing mirrored there", and what to do about it is said once.
func TestStatusStorageTrouble(t *testing.T) {
	bin := buildBinary(t)
	srv := testserver.Shared(t, testserver.KindMinIO)
	env := srv.AWSEnv(t)
	bucket := srv.NewBucket(t, "status-trouble")
	for _, tc := range []struct {
		name, target string
		env          []string
		want, advice string
		code         int // a configuration mistake (bucket, credentials) is 2, a server down 1
	}{
		{"missing bucket", "s3://no-such-bucket-here/m", env, "the bucket does not exist: ", "create the bucket first", 2},
		{"wrong secret", "s3://" + bucket + "/m", append(append([]string{}, env...), "AWS_SECRET_ACCESS_KEY=wrong-secret-0123456789"), "access denied: ", "check AWS_ACCESS_KEY_ID", 2},
		{"endpoint down", "s3://" + bucket + "/m?endpoint=http://127.0.0.1:1", env, "nothing is listening", "nothing is listening", 1},
	} {
		code, st, _ := statusOf(t, bin, tc.env, tc.target)
		if code != tc.code || st.OK || !strings.Contains(st.Error, tc.want) {
			t.Errorf("%s: exit %d, error %q, want exit %d and %q", tc.name, code, st.Error, tc.code, tc.want)
		}
		if n := strings.Count(st.Error, tc.advice); n != 1 {
			t.Errorf("%s: the advice %q is given %d times in %q, want once", tc.name, tc.advice, n, st.Error)
		}
	}
}
