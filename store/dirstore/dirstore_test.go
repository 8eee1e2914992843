//go:build linux

// The tests run on Linux (as CI does): they use its xattr, fsuid, flock and FIFO calls throughout.

package dirstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/storetest"
)

func newStore(t *testing.T, opts dirstore.Options) *dirstore.Store {
	t.Helper()
	s, err := dirstore.New(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Target { return newStore(t, dirstore.Options{}) })
}

func TestSourceConformance(t *testing.T) {
	storetest.RunSource(t, func(t *testing.T) store.Source { return storetest.Seed(t, newStore(t, dirstore.Options{})) })
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func putBytes(t *testing.T, s store.Target, key, data string) store.Info {
	t.Helper()
	info, err := store.PutBytes(t.Context(), s, key, []byte(data), store.PutOptions{SHA256: sum([]byte(data))})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// tempFiles returns the temporary files under dir, relative to it.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), dirstore.TempPrefix) {
			rel, _ := filepath.Rel(dir, p)
			found = append(found, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func listKeys(t *testing.T, s store.Target, prefix string) []string {
	t.Helper()
	var keys []string
	if err := s.List(t.Context(), prefix, func(i store.Info) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func TestFailedWritesLeaveNoTempFile(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	putBytes(t, s, "a/kept", "kept")
	data := []byte("some content")
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	attempts := []struct {
		ctx  context.Context
		r    func() io.Reader
		opts store.PutOptions
	}{
		{t.Context(), func() io.Reader { return bytes.NewReader(data) }, store.PutOptions{Size: 3}},
		{t.Context(), func() io.Reader { return bytes.NewReader(data) }, store.PutOptions{Size: 100}},
		{t.Context(), func() io.Reader { return bytes.NewReader(data) }, store.PutOptions{Size: -1, SHA256: sum(nil)}},
		{t.Context(), func() io.Reader { return iotest.TimeoutReader(bytes.NewReader(data)) }, store.PutOptions{Size: int64(len(data))}},
		{cancelled, func() io.Reader { return bytes.NewReader(data) }, store.PutOptions{Size: int64(len(data))}},
	}
	for i, a := range attempts {
		for _, key := range []string{"a/kept", "a/new", "b/c/new"} {
			if _, err := s.Put(a.ctx, key, a.r(), a.opts); err == nil {
				t.Errorf("attempt %d: Put(%q) succeeded, want an error", i, key)
			}
		}
	}
	if tmp := tempFiles(t, s.Describe()); len(tmp) != 0 {
		t.Errorf("temporary files left after failed writes: %q", tmp)
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{"a/kept"}) {
		t.Errorf("List = %q, want just a/kept", keys)
	}
	// b/c was created for the temporary file; it need not survive, but must not be an object.
	if _, err := s.Stat(t.Context(), "b/c"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat(b/c) = %v, want ErrNotExist", err)
	}
}

func TestLeftoverTempFileHiddenAndCleaned(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	root := s.Describe()
	putBytes(t, s, "streams/v1/index.json", "{}")
	// What a killed run leaves: a temporary file, complete or not, in a directory of its own
	// and next to a real object, one old and one recent.
	old := time.Now().Add(-48 * time.Hour)
	leftovers := map[string]time.Time{
		"noble/amd64/" + dirstore.TempPrefix + "0123456789abcdef": old,
		"streams/v1/" + dirstore.TempPrefix + "fedcba9876543210":  old,
		dirstore.TempPrefix + "recent":                            time.Now(),
	}
	for rel, mtime := range leftovers {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(t.Context(), rel); err == nil {
			t.Errorf("Stat(%q) of a temporary file succeeded", rel)
		}
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{"streams/v1/index.json"}) {
		t.Errorf("List = %q, want only the real object", keys)
	}
	if keys := listKeys(t, s, "noble/"); len(keys) != 0 {
		t.Errorf("List(noble/) = %q, want nothing", keys)
	}

	var asked []string
	n, err := s.CleanLeftovers(t.Context(), store.LeftoverOptions{OlderThan: time.Hour, Mine: func(dir string) bool {
		asked = append(asked, dir)
		return false
	}})
	if err != nil || n != 0 {
		t.Fatalf("CleanLeftovers(none mine) = %d, %v; want nothing removed", n, err)
	}
	if slices.Sort(asked); len(asked) == 0 || asked[0] != "" || slices.ContainsFunc(asked, func(d string) bool { return d != "" && !strings.HasSuffix(d, "/") }) {
		t.Errorf("Mine was asked about %q, want directory prefixes (\"\" for the root)", asked)
	}
	n, err = s.CleanLeftovers(t.Context(), store.LeftoverOptions{OlderThan: time.Hour})
	if err != nil {
		t.Fatalf("CleanLeftovers: %v", err)
	}
	if n != 2 {
		t.Errorf("CleanLeftovers removed %d files, want 2", n)
	}
	if got := tempFiles(t, root); !slices.Equal(got, []string{dirstore.TempPrefix + "recent"}) {
		t.Errorf("temporary files after CleanLeftovers = %q, want only the recent one", got)
	}
	if _, err := os.Stat(filepath.Join(root, "noble")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("directory emptied by CleanLeftovers still there: %v", err)
	}
	if got, err := store.ReadAll(t.Context(), s, "streams/v1/index.json", 0); err != nil || string(got) != "{}" {
		t.Errorf("real object after CleanLeftovers: %q, %v", got, err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("root after CleanLeftovers: %v", err)
	}
}

func TestReservedKeysRefused(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	for _, key := range []string{"../escape", "a/../../escape", "/etc/passwd", "a//b", "a/./b", "a\\b", "", "dir/" + dirstore.TempPrefix + "x"} {
		if _, err := store.PutBytes(t.Context(), s, key, []byte("x"), store.PutOptions{}); err == nil {
			t.Errorf("Put(%q) succeeded", key)
		}
		if _, err := s.Stat(t.Context(), key); err == nil || errors.Is(err, store.ErrNotExist) {
			t.Errorf("Stat(%q) = %v, want a refusal", key, err)
		}
	}
	if tmp := tempFiles(t, s.Describe()); len(tmp) != 0 {
		t.Errorf("temporary files left: %q", tmp)
	}
}

func TestSymlinkOutsideRootRefused(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	root := s.Describe()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "leak")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"out/secret", "leak"} {
		if _, err := s.Stat(t.Context(), key); err == nil {
			t.Errorf("Stat(%q) through a symlink leaving the root succeeded", key)
		}
		if rc, err := s.Open(t.Context(), key, 0); err == nil {
			rc.Close()
			t.Errorf("Open(%q) through a symlink leaving the root succeeded", key)
		}
	}
	for _, key := range []string{"out/new", "out/sub/new", "out/secret"} {
		if _, err := store.PutBytes(t.Context(), s, key, []byte("x"), store.PutOptions{}); err == nil {
			t.Errorf("Put(%q) through a symlink leaving the root succeeded", key)
		}
	}
	if err := s.Delete(t.Context(), "out/secret"); err == nil {
		if _, serr := os.Stat(secret); serr != nil {
			t.Errorf("Delete(out/secret) removed a file outside the root")
		}
	}
	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("the directory outside the root now holds %d entries, want only secret", len(entries))
	}
	if data, err := os.ReadFile(secret); err != nil || string(data) != "secret" {
		t.Errorf("file outside the root changed: %q, %v", data, err)
	}
	if keys := listKeys(t, s, ""); len(keys) != 0 {
		t.Errorf("List shows %q, want nothing from outside the root", keys)
	}

	// A symlink that stays inside the root is followed.
	putBytes(t, s, "real/file", "inside")
	if err := os.Symlink("real/file", filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	if got, err := store.ReadAll(t.Context(), s, "alias", 0); err != nil || string(got) != "inside" {
		t.Errorf("ReadAll(alias) = %q, %v; want the target's content", got, err)
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{"alias", "real/file"}) {
		t.Errorf("List = %q, want alias and real/file", keys)
	}
}

func TestRecordedSHA256(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	root := s.Describe()
	info := putBytes(t, s, "a/file", "hello")
	p := filepath.Join(root, "a", "file")

	buf := make([]byte, 256)
	n, err := unix.Getxattr(p, dirstore.XattrName, buf)
	if errors.Is(err, unix.ENOTSUP) {
		t.Skipf("filesystem of %s has no user extended attributes", root)
	}
	if err != nil {
		t.Fatalf("Getxattr: %v", err)
	}
	want := fmt.Sprintf("5:%d:%s", info.ModTime.UnixNano(), sum([]byte("hello")))
	if got := string(buf[:n]); got != want {
		t.Errorf("xattr = %q, want %q", got, want)
	}

	// Changed by something else, same size: the record no longer applies.
	if err := os.WriteFile(p, []byte("HELLO"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := info.ModTime.Add(time.Second)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stat(t.Context(), "a/file")
	if err != nil {
		t.Fatal(err)
	}
	if st.SHA256 != "" || st.Size != 5 {
		t.Errorf("Stat after an outside change = size %d sha256 %q, want 5 and no sha256", st.Size, st.SHA256)
	}
	// Size changed, mtime put back: not trusted either.
	if err := os.WriteFile(p, []byte("hello, world"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, info.ModTime, info.ModTime); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stat(t.Context(), "a/file"); err != nil || st.SHA256 != "" {
		t.Errorf("Stat after a size change = %+v, %v; want no sha256", st, err)
	}

	// A file put there by something else: listed, sized, no sha256.
	if err := os.WriteFile(filepath.Join(root, "a", "foreign"), []byte("foreign"), 0o644); err != nil {
		t.Fatal(err)
	}
	var infos []store.Info
	if err := s.List(t.Context(), "a/", func(i store.Info) error { infos = append(infos, i); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[1].Key != "a/foreign" || infos[1].Size != 7 || infos[1].SHA256 != "" {
		t.Errorf("List = %+v, want a/file and a/foreign (7 bytes, no sha256)", infos)
	}

	// Written again through the store: trusted again, and List returns it.
	putBytes(t, s, "a/foreign", "foreign")
	infos = nil
	if err := s.List(t.Context(), "a/foreign", func(i store.Info) error { infos = append(infos, i); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].SHA256 != sum([]byte("foreign")) {
		t.Errorf("List = %+v, want the recorded sha256", infos)
	}
}

func TestNoXattr(t *testing.T) {
	s := newStore(t, dirstore.Options{NoXattr: true})
	info := putBytes(t, s, "k", "data")
	if info.SHA256 != sum([]byte("data")) {
		t.Errorf("Put returned sha256 %q, want it computed anyway", info.SHA256)
	}
	st, err := s.Stat(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if st.SHA256 != "" || st.Size != 4 {
		t.Errorf("Stat = %+v, want size 4 and no sha256", st)
	}
	if _, err := unix.Getxattr(filepath.Join(s.Describe(), "k"), dirstore.XattrName, make([]byte, 256)); err == nil {
		t.Errorf("xattr written although NoXattr is set")
	}
	// A store with xattrs on does not trust a record it cannot find.
	s2, err := dirstore.New(s.Describe(), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if st, err := s2.Stat(t.Context(), "k"); err != nil || st.SHA256 != "" {
		t.Errorf("Stat = %+v, %v; want no sha256", st, err)
	}
}

func TestModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		opts      dirstore.Options
		file, dir fs.FileMode
	}{
		{dirstore.Options{}, 0o644, 0o755},
		{dirstore.Options{FileMode: 0o664, DirMode: 0o775}, 0o664, 0o775},
	} {
		s := newStore(t, tc.opts)
		putBytes(t, s, "d/e/f", "x")
		if _, err := s.Swap(t.Context(), "d/lock", []byte("l"), "", store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		for rel, want := range map[string]fs.FileMode{"d/e/f": tc.file, "d/lock": tc.file, "d": tc.dir, "d/e": tc.dir} {
			fi, err := os.Stat(filepath.Join(s.Describe(), rel))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%+v: mode of %s = %v, want %v", tc.opts, rel, got, want)
			}
		}
	}
}

func TestDeleteRemovesEmptyDirectories(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	root := s.Describe()
	putBytes(t, s, "a/b/c/d", "1")
	putBytes(t, s, "a/x", "2")
	if err := s.Delete(t.Context(), "a/b/c/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a/b still there after its last object was deleted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "x")); err != nil {
		t.Errorf("a/x: %v", err)
	}
	if err := s.Delete(t.Context(), "a/x"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("root after deleting everything: %v", err)
	}
	if len(entries) != 0 {
		t.Errorf("root holds %d entries after deleting everything", len(entries))
	}
	// A directory is not an object: Delete leaves it alone.
	if err := os.MkdirAll(filepath.Join(root, "dir", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), "dir/sub"); err != nil {
		t.Errorf("Delete of a directory = %v, want nil", err)
	}
	if _, err := os.Stat(filepath.Join(root, "dir", "sub")); err != nil {
		t.Errorf("Delete removed a directory: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s, err := dirstore.New("mirror", dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := s.Describe(), filepath.Join(dir, "mirror"); got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	if fi, err := os.Stat(filepath.Join(dir, "mirror")); err != nil || !fi.IsDir() {
		t.Errorf("New did not create the root: %v", err)
	}
}

func TestParentIsAFile(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	putBytes(t, s, "a/b", "file")
	_, err := store.PutBytes(t.Context(), s, "a/b/c", []byte("x"), store.PutOptions{})
	if err == nil {
		t.Fatal("Put below a file succeeded")
	}
	if want := filepath.Join(s.Describe(), "a", "b"); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	if _, err := s.Stat(t.Context(), "a/b/c"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat below a file = %v, want ErrNotExist", err)
	}
}

// TestSwapCreateLeavesNoTempFile: creating with Swap (tag "") twice leaves one file and no
// temporary file but the swap lock.
func TestSwapCreateLeavesNoTempFile(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	if _, err := s.Swap(t.Context(), "lock", []byte("one"), "", store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Swap(t.Context(), "lock", []byte("two"), "", store.PutOptions{}); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("second create = %v, want ErrPrecondition", err)
	}
	if tmp := tempFiles(t, s.Describe()); len(tmp) != 1 || tmp[0] != dirstore.SwapLockName {
		t.Errorf("temporary files left: %q", tmp)
	}
	fi, err := os.Stat(filepath.Join(s.Describe(), "lock"))
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink != 1 {
		t.Errorf("lock has %d links, want 1", st.Nlink)
	}
}

// TestPermissionDenied checks the error of a write the filesystem refuses. Root bypasses
// permission bits, so as root the write runs on a thread whose filesystem uid is "nobody"
// (setfsuid(2) is per thread, and dropping it to non-zero drops CAP_DAC_OVERRIDE); the thread is
// discarded afterwards.
func TestPermissionDenied(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	root := s.Describe()
	putBytes(t, s, "ro/existing", "old")
	if err := os.Chmod(filepath.Join(root, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "ro"), 0o755) })

	asUnprivileged := func(f func()) {
		if os.Geteuid() != 0 {
			f()
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
			unix.Setfsuid(65534)
			if prev, _ := unix.SetfsuidRetUid(-1); prev != 65534 {
				t.Errorf("setfsuid did not take effect (fsuid %d)", prev)
				return
			}
			f()
		}()
		<-done
	}
	var err error
	asUnprivileged(func() {
		_, err = store.PutBytes(t.Context(), s, "ro/new", []byte("x"), store.PutOptions{})
	})
	t.Logf("Put into a read-only directory: %v", err)
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Put into a read-only directory = %v, want fs.ErrPermission", err)
	}
	if want := filepath.Join(root, "ro") + "/"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the path under %s", err, want)
	}
	if !strings.Contains(err.Error(), "ro/new") {
		t.Errorf("error %q does not name the key", err)
	}
}

func TestSpecialFilesAreNotObjects(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	putBytes(t, s, "dir/file", "x")
	if err := unix.Mkfifo(filepath.Join(s.Describe(), "dir", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(t.Context(), "dir/fifo"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat of a FIFO = %v, want ErrNotExist", err)
	}
	if rc, err := s.Open(t.Context(), "dir/fifo", 0); !errors.Is(err, store.ErrNotExist) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Open of a FIFO = %v, want ErrNotExist", err)
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{"dir/file"}) {
		t.Errorf("List = %q, want only dir/file", keys)
	}
}

// TestSwapHoldsTheDirectoryLock: Swap waits for the flock on SwapLockName (held here as another
// process would hold it), and the lock file is neither listed nor removed by CleanLeftovers, so two
// swappers can never lock two different files.
func TestSwapHoldsTheDirectoryLock(t *testing.T) {
	s := newStore(t, dirstore.Options{})
	root := s.Describe()
	if _, err := s.Swap(t.Context(), ".ssmirror/lock", []byte("first"), "", store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(root, ".ssmirror", dirstore.SwapLockName)
	f, err := os.Open(lockPath)
	if err != nil {
		t.Fatalf("the swap lock file: %v", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_, tag, err := s.ReadTagged(t.Context(), ".ssmirror/lock", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Swap(ctx, ".ssmirror/lock", []byte("second"), tag, store.PutOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Swap while another holds the directory's lock = %v, want it to wait until the deadline", err)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if _, err := s.Swap(t.Context(), ".ssmirror/lock", []byte("second"), tag, store.PutOptions{}); err != nil {
		t.Errorf("Swap once the lock is free: %v", err)
	}
	if n, err := s.CleanLeftovers(t.Context(), store.LeftoverOptions{}); err != nil || n != 0 {
		t.Errorf("CleanLeftovers = %d, %v; want nothing removed", n, err)
	}
	if _, err := os.Stat(lockPath); err != nil {
		t.Errorf("the swap lock file after CleanLeftovers: %v", err)
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{".ssmirror/lock"}) {
		t.Errorf("List = %q, want only the object", keys)
	}
}
