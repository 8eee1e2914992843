//go:build unix

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// TestPausedWriterChangesNothing: a run is SIGSTOPped mid-transfer past its lease (--lock-ttl
// 3s); a newer run takes the lease over, publishes and records its state; then the paused run
// is resumed. It must change nothing readers or the next run see — no metadata byte, no
// state.json byte, no deletion — and a following 'ssmirror gc --gc-grace=0' must delete nothing
// the published index references. (Before fencing, the resumed run's failure path saved its
// stale state over the newer one's, and gc then deleted the newer version's files.)
func TestPausedWriterChangesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ssmirror several times with a paused process")
	}
	bin := buildBinary(t)
	signer, keyringPath := testKeys(t)
	kr, err := sign.LoadKeyring(keyringPath)
	if err != nil {
		t.Fatal(err)
	}
	onEveryTarget(t, func(t *testing.T, target string, env []string, dst store.Target) {
		pausedWriter(t, bin, signer, kr, keyringPath, target, env, dst)
	})
}

// switchable serves whichever handler it holds.
type switchable struct{ h atomic.Pointer[http.Handler] }

func (s *switchable) set(h http.Handler)                               { s.h.Store(&h) }
func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

func pausedWriter(t *testing.T, bin string, signer *sign.Signer, kr *sign.Keyring, keyringPath, target string, env []string, dst store.Target) {
	ctx := t.Context()
	gen := func(versions ...string) *streamtest.Stream {
		s, err := streamtest.Generate(streamtest.Config{
			Releases: []string{"jammy", "noble"}, Arches: []string{"amd64"}, Versions: versions,
			Kernels: []string{"ga", "hwe"}, Seed: 11, SquashfsSize: 6 << 20, InitrdSize: 1 << 20,
		}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	old, cur := gen("20250701"), gen("20250701", "20250718")
	sw := &switchable{}
	sw.set(old.Handler())
	th := &throttled{h: sw}
	th.off.Store(true)
	up := httptest.NewServer(th)
	defer up.Close()
	filters := []string{"arch=amd64"}
	fs, _ := streams.ParseFilters(filters)
	// Only the run to be paused has a short lease; the others have one long enough for a loaded
	// machine (a fence refuses to write once half the lease has gone since the last renewal).
	args := func(extra ...string) []string {
		return append(append([]string{"--keyring", keyringPath, "--max=1", "--lock-ttl=30s"}, extra...), append([]string{up.URL + "/", target}, filters...)...)
	}
	runOK := func(name string, a ...string) string {
		t.Helper()
		cmd := exec.Command(bin, a...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		return string(out)
	}

	// The mirror holds the old version.
	runOK("the first run", args()...)

	// Upstream gains a version; the run that fetches it is slow, and is paused once some of
	// the new files are complete in the target.
	sw.set(cur.Handler())
	th.off.Store(false)
	var newFiles []string
	for p := range cur.Content {
		if strings.Contains(p, "/20250718/") {
			newFiles = append(newFiles, p)
		}
	}
	paused := exec.Command(bin, args("--lock-ttl=3s")...)
	paused.Env = env
	var pausedOut bytes.Buffer
	paused.Stdout, paused.Stderr = &pausedOut, &pausedOut
	if err := paused.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- paused.Wait() }()
	defer paused.Process.Kill()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := 0
		for _, p := range newFiles {
			if ok, _ := store.Exists(ctx, dst, p); ok {
				n++
			}
		}
		if n > 0 && n < len(newFiles) {
			break
		}
		if n == len(newFiles) || time.Now().After(deadline) {
			t.Fatalf("could not pause the run mid-transfer (%d of %d new files complete)\n%s", n, len(newFiles), pausedOut.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := paused.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	// A newer run waits for the paused run's lease to expire, takes it over and publishes.
	th.off.Store(true)
	runOK("the run that takes over", args("--lock-timeout=60s")...)
	checkPublished(t, dst, kr, fs, 0, false)
	before := storeSnapshot(t, dst)

	// The paused run resumes: it has lost the target and must change nothing.
	if err := paused.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err == nil {
			t.Errorf("the resumed run exited 0 after losing its lease:\n%s", pausedOut.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("the resumed run did not end:\n%s", pausedOut.String())
	}
	t.Logf("the resumed run:\n%s", strings.TrimSpace(pausedOut.String()))
	after := storeSnapshot(t, dst)
	for key, was := range before {
		now, ok := after[key]
		switch {
		case !ok:
			t.Errorf("%s was deleted by the resumed run", key)
		case !bytes.Equal(now, was):
			t.Errorf("%s was changed by the resumed run", key)
		}
	}
	for key := range after {
		if _, ok := before[key]; !ok && (strings.HasPrefix(key, "streams/") || strings.HasPrefix(key, ".ssmirror/")) {
			t.Errorf("%s was written by the resumed run", key)
		}
	}

	// What gc deletes now is only what nothing published references.
	var gcRep sync.GCReport
	if err := json.Unmarshal([]byte(runOK("gc", "gc", "--gc-grace=0", "--json", target)), &gcRep); err != nil {
		t.Fatal(err)
	}
	t.Logf("gc --gc-grace=0 then deleted %d objects", len(gcRep.Deleted))
	checkPublished(t, dst, kr, fs, 0, true)
}

// storeSnapshot reads what readers and the next run see: every object's bytes for metadata and
// state, size and the sha256 of the bytes for content (the lease, rewritten by every run, is
// left out). Content is hashed rather than its recorded sha256 taken: into a directory, a file
// written through a batch (store.Batcher) has its sha256 recorded only by the flush that makes
// it durable, which a run that lost its lease (its context cancelled) does not complete; a file
// such a run renames into place with the same bytes then carries no recorded sha256, which is
// not a change readers see, and the next run hashes such a file before it trusts it.
func storeSnapshot(t *testing.T, dst store.Target) map[string][]byte {
	t.Helper()
	ctx := t.Context()
	out := map[string][]byte{}
	err := dst.List(ctx, "", func(info store.Info) error {
		if info.Key == sync.LockKey {
			return nil
		}
		if strings.HasPrefix(info.Key, "streams/") || strings.HasPrefix(info.Key, ".ssmirror/") {
			data, err := store.ReadAll(ctx, dst, info.Key, 0)
			if err != nil {
				return err
			}
			out[info.Key] = data
			return nil
		}
		rc, err := dst.Open(ctx, info.Key, 0)
		if err != nil {
			return err
		}
		defer rc.Close()
		h := sha256.New()
		if _, err := io.Copy(h, rc); err != nil {
			return fmt.Errorf("reading %s: %w", info.Key, err)
		}
		out[info.Key] = fmt.Appendf(nil, "%d %x", info.Size, h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
