package sync_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/sync"
)

func TestSecondRunIsRefusedWithTheHolder(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	held, _, err := sync.AcquireLock(context.Background(), dst, sync.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sync.Run(context.Background(), up.src, dst, sync.Options{Verification: sync.Verification{Keyring: up.keyring}})
	var locked *sync.LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("want a LockedError, got %v", err)
	}
	host, _ := os.Hostname()
	if locked.Holder.PID != os.Getpid() || locked.Holder.Host != host || !strings.Contains(err.Error(), "pid") || !strings.Contains(err.Error(), "lease until") {
		t.Errorf("the message does not name the holder: %v", err)
	}
	if files := tree(t, dir); len(files) != 0 {
		t.Errorf("the refused run wrote %v", contentPaths(files))
	}
	// Waiting works once the holder releases.
	go func() {
		time.Sleep(300 * time.Millisecond)
		held.Release()
	}()
	run(t, up, dst, sync.Options{Filters: mustParse(t, "arch=amd64"), Max: 1, Lock: sync.LockOptions{Wait: 30 * time.Second}})
	checkReleased(t, dst)
}

// checkReleased checks that the lock is released: the lease object is never deleted (a delete
// could remove a newer holder's), it is marked released by a conditional write.
func checkReleased(t *testing.T, dst store.Store) {
	t.Helper()
	data, err := store.ReadAll(context.Background(), dst, sync.LockKey, 0)
	if err != nil {
		t.Fatalf("reading the lock after the run: %v", err)
	}
	var l sync.Lease
	if err := json.Unmarshal(data, &l); err != nil || !l.Released {
		t.Errorf("the lock is still held after the run: %s (%v)", data, err)
	}
}

func TestStaleLockIsTakenOver(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	_, dst := newTarget(t)
	dead := sync.Lease{ID: "dead", Host: "gone", PID: 1, Started: time.Now().Add(-2 * time.Hour), Expires: time.Now().Add(-time.Hour)}
	data, _ := json.Marshal(dead)
	if _, err := store.PutBytes(context.Background(), dst, sync.LockKey, data, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, up, dst, sync.Options{Filters: mustParse(t, "arch=amd64"), Max: 1})
	checkReleased(t, dst)
	// A live lease is not taken over.
	live := dead
	live.Expires = time.Now().Add(time.Hour)
	data, _ = json.Marshal(live)
	store.PutBytes(context.Background(), dst, sync.LockKey, data, store.PutOptions{})
	_, err := sync.Run(context.Background(), up.src, dst, sync.Options{Verification: sync.Verification{Keyring: up.keyring}})
	var locked *sync.LockedError
	if !errors.As(err, &locked) || locked.Holder.ID != "dead" {
		t.Fatalf("a live lease was not respected: %v", err)
	}
}

func TestLostLeaseCancelsTheRun(t *testing.T) {
	_, dst := newTarget(t)
	l, ctx, err := sync.AcquireLock(context.Background(), dst, sync.LockOptions{TTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Another run takes over (as if this one had stalled past its lease) and, like any run,
	// keeps renewing its lease: a renewal of ours racing with its takeover cannot win for long.
	other, _ := json.Marshal(sync.Lease{ID: "other", Host: "elsewhere", Expires: time.Now().Add(time.Hour)})
	stopOther := make(chan struct{})
	otherDone := make(chan struct{})
	go func() {
		defer close(otherDone)
		for {
			store.PutBytes(context.Background(), dst, sync.LockKey, other, store.PutOptions{})
			select {
			case <-stopOther:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	select {
	case <-ctx.Done():
		if !errors.Is(context.Cause(ctx), sync.ErrLockLost) {
			t.Errorf("cancelled with %v, want ErrLockLost", context.Cause(ctx))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run was not cancelled after losing its lease")
	}
	close(stopOther)
	<-otherDone
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	// Release leaves the other run's lock alone.
	data, err := store.ReadAll(context.Background(), dst, sync.LockKey, 0)
	if err != nil || !strings.Contains(string(data), `"other"`) {
		t.Errorf("the other run's lock was removed: %s %v", data, err)
	}
}

// TestInterruptedRunReleasesTheLock cancels a run mid-transfer (as SIGINT does): nothing is
// published, the lock is released, and the next run completes.
func TestInterruptedRunReleasesTheLock(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	ctx, cancel := context.WithCancel(context.Background())
	var victim string
	for _, it := range up.stream.Items {
		if strings.HasSuffix(it.Path, "squashfs") && strings.HasPrefix(it.Path, "noble/amd64/20250718") {
			victim = it.Path
		}
	}
	up.stream.SetOverride(victim, func(r io.Reader) io.Reader {
		cancel() // interrupt while this file is being served
		return r
	})
	_, err := sync.Run(ctx, up.src, dst, sync.Options{Filters: mustParse(t, "release=noble", "arch=amd64"), Max: 1, Verification: sync.Verification{Keyring: up.keyring}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want a cancellation, got %v", err)
	}
	for p := range tree(t, dir) {
		if strings.HasPrefix(p, "streams/") {
			t.Errorf("metadata published by an interrupted run: %s", p)
		}
	}
	checkReleased(t, dst)
	up.stream.SetOverride(victim, nil)
	run(t, up, dst, sync.Options{Filters: mustParse(t, "release=noble", "arch=amd64"), Max: 1})
	checkVerbatim(t, up, tree(t, dir))
}

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
		if _, err := store.PutBytes(context.Background(), dst, sync.LockKey, data, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put(lease)
	run(t, up, dst, sync.Options{Filters: mustParse(t, "arch=amd64"), Max: 1})

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
		_, err := sync.Run(context.Background(), up.src, dst, sync.Options{Verification: sync.Verification{Keyring: up.keyring}})
		var locked *sync.LockedError
		if !errors.As(err, &locked) {
			t.Errorf("%s: the lease was taken over: %v", name, err)
		}
	}
}

// lockHolderEnv, set to a directory, makes the test binary a process that takes the lock of
// that directory target, says "held PID" on stdout, and holds the lock until stdin closes.
const lockHolderEnv = "SSMIRROR_TEST_LOCK_HOLDER"

func holdLock(dir string) int {
	dst, err := dirstore.New(dir, dirstore.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, _, err := sync.AcquireLock(context.Background(), dst, sync.LockOptions{TTL: time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("held %d\n", os.Getpid())
	io.Copy(io.Discard, os.Stdin)
	if err := l.Release(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
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
	// namespace's next PID that one.
	free := freePID(t)
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "sh", "-c",
		`echo $(($1 - 1)) > /proc/sys/kernel/ns_last_pid || exit 1; "$0" & wait`, os.Args[0], strconv.Itoa(free))
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
	data, err := store.ReadAll(context.Background(), dst, sync.LockKey, 0)
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
	_, err = sync.Run(context.Background(), up.src, dst, sync.Options{Verification: sync.Verification{Keyring: up.keyring}})
	var locked *sync.LockedError
	if !errors.As(err, &locked) || locked.Holder.ID != held.ID {
		t.Fatalf("a live lease held in another PID namespace (pid %d there, free here) was not respected: %v", pid, err)
	}
	if after := tree(t, dir); !reflect.DeepEqual(before, after) {
		t.Errorf("the refused run wrote %v", contentPaths(after))
	}
	data, _ = store.ReadAll(context.Background(), dst, sync.LockKey, 0)
	var still sync.Lease
	json.Unmarshal(data, &still)
	if still.ID != held.ID {
		t.Errorf("the lease is now %s, not the holder's", data)
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

// TestRacingTakeoversInADirectory: the same race on a directory target, each racer with a store
// of its own (as separate processes have): one winner per trial.
func TestRacingTakeoversInADirectory(t *testing.T) {
	const trials, racers = 20, 10
	dir, dst := newTarget(t)
	ctx := context.Background()
	var perTrial []int
	for trial := range trials {
		dead := sync.Lease{ID: fmt.Sprintf("dead-%d", trial), Host: "gone", PID: 1, Expires: time.Now().Add(-time.Minute)}
		data, _ := json.Marshal(dead)
		if _, err := store.PutBytes(ctx, dst, sync.LockKey, data, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		var wg gosync.WaitGroup
		var mu gosync.Mutex
		var won []*sync.TargetLock
		start := make(chan struct{})
		for range racers {
			own, err := dirstore.New(dir, dirstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				<-start
				l, _, err := sync.AcquireLock(ctx, own, sync.LockOptions{})
				switch {
				case err == nil:
					mu.Lock()
					won = append(won, l)
					mu.Unlock()
				case !errors.As(err, new(*sync.LockedError)):
					t.Errorf("trial %d: racing AcquireLock: %v", trial, err)
				}
			})
		}
		close(start)
		wg.Wait()
		for _, l := range won {
			l.Release()
		}
		perTrial = append(perTrial, len(won))
		if len(won) != 1 {
			t.Errorf("trial %d: %d of %d racing runs took over the expired lease, want exactly 1", trial, len(won), racers)
		}
	}
	t.Logf("directory: %d trials of %d racing takeovers; winners per trial %v", trials, racers, perTrial)
}
