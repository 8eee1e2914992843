package sync_test

// The tests of taking over a lease whose holder is gone, which only Linux's /proc can prove.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

// thisKernel returns this process's boot id and PID namespace as a lease records them.
func thisKernel(t *testing.T) (bootID, pidNS string) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skipf("no boot id: %v", err)
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Skipf("no PID namespace identity: %v", err)
	}
	return strings.TrimSpace(string(b)), ns
}

func TestDeadHolderOnThisHostIsTakenOver(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	_, dst := newTarget(t)
	bootID, pidNS := thisKernel(t)
	// A process that has exited: its pid is free.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	lease := sync.Lease{ID: "killed", Host: host, PID: cmd.Process.Pid, BootID: bootID, PIDNamespace: pidNS,
		Started: time.Now(), Expires: time.Now().Add(time.Hour)}
	put := func(l sync.Lease) {
		t.Helper()
		data, _ := json.Marshal(l)
		if _, err := store.PutBytes(t.Context(), dst, sync.LockKey, data, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put(lease)
	run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}})

	// The same lease is respected until it expires when anything but the PID fails to prove
	// the holder was on this very kernel and namespace: another host, another boot, another PID
	// namespace (a container with the same host name), or a lease that does not say.
	for name, change := range map[string]func(*sync.Lease){
		"another host":          func(l *sync.Lease) { l.Host = "another-host" },
		"another boot":          func(l *sync.Lease) { l.BootID = "00000000-0000-0000-0000-000000000000" },
		"another PID namespace": func(l *sync.Lease) { l.PIDNamespace = "pid:[1]" },
		"no namespace recorded": func(l *sync.Lease) { l.PIDNamespace, l.BootID = "", "" },
	} {
		l := lease
		change(&l)
		put(l)
		_, err := sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: up.keyring}}})
		var locked *sync.LockedError
		if !errors.As(err, &locked) {
			t.Errorf("%s: the lease was taken over: %v", name, err)
		}
	}
}

// TestLiveLeaseInAnotherPIDNamespaceIsNotTakenOver: a run in another PID namespace on this host
// (a container with the same host name) holds the target; its PID does not exist in this
// namespace, which proves nothing about it. A second run here must wait for the lease, not take
// it over (it did, reading ESRCH from its own namespace as "holder dead"), and writes nothing.
func TestLiveLeaseInAnotherPIDNamespaceIsNotTakenOver(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs root and unshare(1) (CI=true: not skipped): %v", err)
		}
		t.Skip("needs root and unshare(1)")
	}
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)

	// The holder's PID in its namespace is one that is free in ours: ns_last_pid makes the
	// namespace's next PID that one. The holder holds until its stdin closes, and sh gives a
	// command run with & /dev/null for stdin (even with <&0), so the holder reads our pipe
	// through fd 3 (it read /dev/null and released at once: the run here then took a released
	// lease, which CI saw as a takeover).
	free := freePID(t)
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "sh", "-c",
		`echo $(($1 - 1)) > /proc/sys/kernel/ns_last_pid || exit 1; exec 3<&0; "$0" <&3 3<&- & wait`, os.Args[0], strconv.Itoa(free))
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("the holder: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the holder did not take the lock: %v", err)
	}
	var pid int
	if _, err := fmt.Sscanf(line, "held %d", &pid); err != nil {
		t.Fatalf("holder said %q", line)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Skipf("the holder's PID %d exists in this namespace too (%v): nothing to prove", pid, err)
	}
	data, err := store.ReadAll(t.Context(), dst, sync.LockKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	var held sync.Lease
	json.Unmarshal(data, &held)
	host, _ := os.Hostname()
	if held.Host != host || held.PID != pid {
		t.Fatalf("the holder's lease %s is not from this host with PID %d", data, pid)
	}
	t.Logf("holder: PID %d in its namespace (%s), free in this one", pid, held.PIDNamespace)

	before := tree(t, dir)
	_, err = sync.Run(t.Context(), up.src, dst, sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: up.keyring}}})
	var locked *sync.LockedError
	if !errors.As(err, &locked) || locked.Holder.ID != held.ID {
		t.Fatalf("a live lease held in another PID namespace (pid %d there, free here) was not respected: %v", pid, err)
	}
	if after := tree(t, dir); !reflect.DeepEqual(before, after) {
		t.Errorf("the refused run wrote %v", contentPaths(after))
	}
	data, _ = store.ReadAll(t.Context(), dst, sync.LockKey, 0)
	var still sync.Lease
	json.Unmarshal(data, &still)
	if still.ID != held.ID || still.Released {
		t.Errorf("the lease is now %s, not the holder's unreleased one", data)
	}
}

// freePID returns a PID no process of this namespace has.
func freePID(t *testing.T) int {
	t.Helper()
	max := 32768
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			max = n
		}
	}
	for p := max - 2; p > 300; p-- {
		if err := syscall.Kill(p, 0); errors.Is(err, syscall.ESRCH) {
			return p
		}
	}
	t.Fatal("no free PID")
	return 0
}
