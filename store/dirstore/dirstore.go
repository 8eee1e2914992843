// Package dirstore is a local directory as a store.Target: the object at key "a/b/c" is the file
// root/a/b/c.
//
// Writes are atomic: Put writes into a hidden temporary file in the destination directory (named
// TempPrefix + random), hashing in the same pass, checks size and sha256, fsyncs the file,
// renames it over the destination and fsyncs the directory, and the parent of every directory
// it created. A failed or cancelled write removes its temporary file; a killed process may leave
// one behind, which List never shows and CleanLeftovers removes. Batch (store.Batcher) gives a
// view whose Put and Copy leave the fsyncs off the way of each write: background syncers fsync
// the files soon after, and one flush waits for them and syncs the directories.
//
// The verified sha256 is recorded in the extended attribute XattrName as
// "size:mtime_ns:sha256", so Stat and List return it without reading the file; it is trusted only
// while the file's size and modification time still match, so a file changed by something else
// reports SHA256 "". On a filesystem that refuses user extended attributes nothing is recorded and
// SHA256 is "".
//
// Info.ETag is the file's inode number, size and modification time (see fileETag): a file
// replaced by rename or rewritten in place gets another one.
//
// Swap (store.Swapper) is a read-compare-rename done while holding an flock(2) lock on a file
// named SwapLockName in the key's directory, which is created on first use and never removed (it
// is hidden like a temporary file, and CleanLeftovers leaves it). The tag is the sha256 of the content.
// flock works between processes of one kernel whatever their PID namespaces; on a network
// filesystem Swap is only as atomic as that filesystem's flock. A process stopped inside a swap
// (SIGSTOP in that millisecond) holds up the other swaps of that directory until it resumes or
// dies; they wait until their context ends.
//
// Platforms: the code above is what runs on Linux and the other Unix systems. Windows builds
// (not exercised by the tests): there Swap's lock is LockFileEx, no sha256 is recorded (no
// extended attributes), and an ETag is the size and modification time only (no inode number).
//
// Symlinks: every access goes through an os.Root opened on the root directory, so no key can
// reach outside it, not even through a symlink inside the tree pointing elsewhere (such access
// fails with an error, it is not followed). Symlinks that stay inside the root are followed by
// Stat, Open, Put and Delete; List reports a symlink to a regular file as an object but does not
// descend into symlinked directories, so a link cycle cannot make it loop.
package dirstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// TempPrefix starts the name of every temporary file a Store writes. Keys whose last segment
// starts with it are refused.
const TempPrefix = ".ssmirror-tmp-"

// XattrName is the extended attribute holding "size:mtime_ns:sha256" of a file written by a
// Store.
const XattrName = "user.ssmirror.sha256"

// SwapLockName is the file, in the directory of a key written with Swap, that Swap locks.
const SwapLockName = TempPrefix + "swap-lock"

var (
	_ store.Target          = (*Store)(nil)
	_ store.Copier          = (*Store)(nil)
	_ store.LeftoverCleaner = (*Store)(nil)
	_ store.Describer       = (*Store)(nil)
)

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// FileMode is the permission of the files written (default 0644). It is set explicitly, so
	// the umask does not apply.
	FileMode fs.FileMode
	// DirMode is the permission of the directories created (default 0755), set explicitly too.
	DirMode fs.FileMode
	// NoXattr turns off recording and reading the sha256 extended attribute: Info.SHA256 is
	// then filled only by Put, Copy and Swap.
	NoXattr bool
	// Trace, when set, is called after each fsync ("fsync", the file's or directory's name
	// relative to the root, "." for the root; a temporary file is named by the key it is
	// written for) and after each rename that makes an object visible ("rename", its key).
	// For tests of the order of writes.
	Trace func(op, name string)
}

// Store is a directory holding objects as files. It is safe for concurrent use, including by
// several processes, though only one writer per target is expected.
type Store struct {
	dir  string // absolute path of the root, for messages
	root *os.Root
	opts Options
	// durableDirs holds the directories (relative names) whose entries in their parents this
	// Store has synced: a Put into them need not sync their parents again.
	durableDirs gosync.Map
	// syncFault, in tests, is asked before each fsync (name as for Options.Trace) and may make
	// it fail.
	syncFault atomic.Pointer[func(name string) error]
}

// New opens the directory root as a Store, creating it (and its parents) when it does not exist.
func New(root string, opts Options) (*Store, error) {
	if opts.FileMode == 0 {
		opts.FileMode = 0o644
	}
	if opts.DirMode == 0 {
		opts.DirMode = 0o755
	}
	opts.FileMode &= fs.ModePerm
	opts.DirMode &= fs.ModePerm
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("directory store %s: %w", root, err)
	}
	if err := os.MkdirAll(abs, opts.DirMode); err != nil {
		return nil, fmt.Errorf("directory store: creating %w", err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("directory store: opening %w", err)
	}
	return &Store{dir: abs, root: r, opts: opts}, nil
}

// Describe returns the absolute path of the root directory.
func (s *Store) Describe() string { return s.dir }

// Close releases the root directory. The Store must not be used afterwards.
func (s *Store) Close() error { return s.root.Close() }

// fail builds the error of operation op on key (a *store.Error): it names the full path of the file (once) and keeps the
// cause (an errno, fs.ErrNotExist, fs.ErrPermission…) for errors.Is. Not-a-directory on the way
// to key means key does not exist.
func (s *Store) fail(op, key string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = fmt.Errorf("%s %s: %w", pe.Op, s.fullPath(pe.Path), pe.Err)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		err = fmt.Errorf("%s %s: %w", le.Op, s.fullPath(le.New), le.Err)
	}
	if errors.Is(err, syscall.ENOTDIR) {
		err = fmt.Errorf("%w (%w)", store.ErrNotExist, err)
	}
	return &store.Error{Op: op, Key: key, Err: err}
}

// fullPath is the path of name in messages: a name relative to the root (an error of an
// operation through s.root) is joined to it; an absolute one (an error of an operation on a file
// the root opened, whose name already starts with the root's) is kept as it is.
func (s *Store) fullPath(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(s.dir, filepath.FromSlash(name))
}

func checkKey(op, key string) error {
	if err := store.ValidKey(key); err != nil {
		return &store.Error{Op: op, Key: key, Err: err}
	}
	if strings.HasPrefix(path.Base(key), TempPrefix) {
		return &store.Error{Op: op, Key: key, Err: fmt.Errorf("%w: names starting with %q are reserved for temporary files", store.ErrInvalidKey, TempPrefix)}
	}
	return nil
}

// Stat describes the object at key.
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	if err := checkKey("stat", key); err != nil {
		return store.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Info{}, &store.Error{Op: "stat", Key: key, Err: err}
	}
	f, info, err := s.openFile(key)
	if err != nil {
		return store.Info{}, s.fail("stat", key, err)
	}
	f.Close()
	return info, nil
}

// openFile opens key for reading and describes it; a directory is reported as not existing.
func (s *Store) openFile(key string) (*os.File, store.Info, error) {
	// O_NONBLOCK: opening a FIFO someone left in the tree must not hang; it changes nothing
	// for regular files.
	f, err := s.root.OpenFile(key, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, store.Info{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, store.Info{}, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, store.Info{}, &fs.PathError{Op: "open", Path: key, Err: fmt.Errorf("%w: not a regular file", fs.ErrNotExist)}
	}
	return f, store.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), SHA256: s.recorded(f, fi), ETag: fileETag(fi)}, nil
}

// fileETag is the version tag of a file: its inode number, size and modification time in
// nanoseconds. A file replaced by rename (as Put does, and rsync, and most editors) has a new
// inode; one rewritten in place has a new modification time. What it cannot see is a rewrite in
// place that keeps the size and sets the old modification time back (or lands in the same clock
// tick on a filesystem with coarse timestamps): reading the content (--verify-existing) does.
func fileETag(fi fs.FileInfo) string {
	return strconv.FormatUint(inode(fi), 16) + "-" + strconv.FormatInt(fi.Size(), 16) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 16)
}

// recorded returns the sha256 recorded on f, or "" when there is none or it does not apply to
// the file as it is now.
func (s *Store) recorded(f *os.File, fi fs.FileInfo) string {
	if s.opts.NoXattr {
		return ""
	}
	var buf [256]byte
	var n int
	var xerr error
	rc, err := f.SyscallConn()
	if err != nil {
		return ""
	}
	if err := rc.Control(func(fd uintptr) { n, xerr = getxattr(fd, XattrName, buf[:]) }); err != nil || xerr != nil {
		return ""
	}
	parts := strings.Split(string(buf[:n]), ":")
	if len(parts) != 3 || len(parts[2]) != 64 {
		return ""
	}
	size, err1 := strconv.ParseInt(parts[0], 10, 64)
	mtime, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || size != fi.Size() || mtime != fi.ModTime().UnixNano() {
		return ""
	}
	if _, err := hex.DecodeString(parts[2]); err != nil {
		return ""
	}
	return strings.ToLower(parts[2])
}

// record stores sum on f for its current size and mtime. Failure is not an error: the hash is
// an optimisation, and some filesystems refuse user extended attributes.
func (s *Store) record(f *os.File, fi fs.FileInfo, sum string) {
	if s.opts.NoXattr {
		return
	}
	val := fmt.Sprintf("%d:%d:%s", fi.Size(), fi.ModTime().UnixNano(), sum)
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = setxattr(fd, XattrName, []byte(val)) })
	}
}

// Open reads the object at key from offset on. The reader stops with the context's error once
// ctx is done.
func (s *Store) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if err := checkKey("open", key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &store.Error{Op: "open", Key: key, Err: err}
	}
	f, info, err := s.openFile(key)
	if err != nil {
		return nil, s.fail("open", key, err)
	}
	if offset < 0 || offset > info.Size {
		f.Close()
		return nil, &store.Error{Op: "open", Key: key, Err: fmt.Errorf("offset %d outside the file's %d bytes", offset, info.Size)}
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, s.fail("open", key, err)
		}
	}
	return &reader{ctx: ctx, f: f, key: key, size: info.Size - offset}, nil
}

type reader struct {
	ctx  context.Context
	f    *os.File
	key  string
	size int64
}

// Size is the bytes left to read when the file was opened (store.Sizer).
func (r *reader) Size() int64 { return r.size }

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, &store.Error{Op: "reading", Key: r.key, Err: err}
	}
	return r.f.Read(p)
}

func (r *reader) Close() error { return r.f.Close() }

// mkdirs creates the directory dir (a key's parent, "." for the root) and its missing parents
// with the configured mode. It returns the directories on the way (dir included, the root not)
// whose entries in their parents are not known to be durable: those it created, and those no
// sync of this Store has covered yet (one created by another Put still in flight, or by
// another process).
func (s *Store) mkdirs(dir string) ([]string, error) {
	if dir == "." {
		return nil, nil
	}
	dirs, err := s.mkdirs(path.Dir(dir))
	if err != nil {
		return nil, err
	}
	err = s.root.Mkdir(dir, s.opts.DirMode)
	if err == nil {
		s.durableDirs.Delete(dir) // a directory of that name was removed since
		return append(dirs, dir), s.root.Chmod(dir, s.opts.DirMode)
	}
	if errors.Is(err, fs.ErrExist) {
		fi, serr := s.root.Stat(dir)
		if serr == nil && !fi.IsDir() {
			return nil, &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		if _, ok := s.durableDirs.Load(dir); !ok {
			dirs = append(dirs, dir)
		}
		return dirs, nil
	}
	return nil, err
}

// tempFile creates a new temporary file in the directory of key, creating that directory when
// needed. It returns the file, its name relative to the root, and mkdirs' list of directories.
func (s *Store) tempFile(key string) (*os.File, string, []string, error) {
	dir := path.Dir(key)
	var err error
	// A concurrent Delete may remove the directory between mkdirs and the create: retry.
	for range 5 {
		var dirs []string
		if dirs, err = s.mkdirs(dir); err != nil {
			return nil, "", nil, err
		}
		var rnd [8]byte
		rand.Read(rnd[:])
		name := path.Join(dir, TempPrefix+hex.EncodeToString(rnd[:]))
		var f *os.File
		f, err = s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, name, dirs, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
			return nil, "", nil, err
		}
	}
	return nil, "", nil, err
}

// writeTemp writes r into a new temporary file next to key, verifying it against opts (and
// against wantRecorded, a sha256 the source claims, when not empty), and leaves it complete,
// with its final mode. When durable, its sha256 is recorded and it is synced; otherwise its
// writeback is only started (see Batch). On failure nothing is left behind. dirs are the
// directories on the way to key whose entries in their parents are not known to be durable.
func (s *Store) writeTemp(ctx context.Context, op, key string, r io.Reader, opts store.PutOptions, durable bool) (tmp string, info store.Info, dirs []string, err error) {
	if err := ctx.Err(); err != nil {
		return "", store.Info{}, nil, &store.Error{Op: op, Key: key, Err: err}
	}
	f, name, dirs, err := s.tempFile(key)
	if err != nil {
		return "", store.Info{}, nil, s.fail(op, key, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			s.root.Remove(name)
		}
	}()
	v := store.NewVerifier(key, r, opts)
	// The content is hashed (by v) and written from this one buffer: no other copy (on Linux,
	// not even into the page cache: contentWriter). Reads are gathered until it is full, so a
	// reader giving tiny pieces does not mean tiny writes.
	var buf []byte
	if opts.Size >= 0 && opts.Size < smallFile {
		buf = make([]byte, max(opts.Size+1, 512)) // +1: the read that sees the end (or a byte too many)
	} else {
		wb := writeBuffers.get()
		defer writeBuffers.put(wb)
		buf = wb.b
	}
	w := newContentWriter(f, len(buf))
	for {
		if err := ctx.Err(); err != nil {
			return "", store.Info{}, nil, &store.Error{Op: op, Key: key, Err: err}
		}
		n, rerr := io.ReadFull(v, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return "", store.Info{}, nil, s.fail(op, key, err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			if errors.Is(rerr, store.ErrChecksum) {
				return "", store.Info{}, nil, store.NewError(op, key, rerr)
			}
			return "", store.Info{}, nil, &store.Error{Op: op, Key: key, Err: fmt.Errorf("reading the content: %w", rerr)}
		}
	}
	if err := v.Check(); err != nil {
		return "", store.Info{}, nil, err
	}
	if err := f.Chmod(s.opts.FileMode); err != nil {
		return "", store.Info{}, nil, s.fail(op, key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return "", store.Info{}, nil, s.fail(op, key, err)
	}
	sum := v.Sum()
	if durable {
		s.record(f, fi, sum)
		if err := s.fsync(f, key); err != nil { // traced as key: the content it will have
			return "", store.Info{}, nil, s.fail(op, key, err)
		}
	} else {
		startWriteback(f)
	}
	if err := f.Close(); err != nil {
		return "", store.Info{}, nil, s.fail(op, key, err)
	}
	if err := ctx.Err(); err != nil {
		return "", store.Info{}, nil, &store.Error{Op: op, Key: key, Err: err}
	}
	// The inode, size and mtime stay the same through the rename that publishes it.
	return name, store.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), SHA256: sum, ETag: fileETag(fi)}, dirs, nil
}

// writeBuffer is the most one Put reads before writing it out: the size of the buffers a Put of
// a file of at least smallFile bytes reads into and writes from (writeBuffers), one huge page
// (buffers_linux.go). Twice that was faster still into a directory on loopback (1.78 s against
// 1.94 s for the bench's 1.5 GB) but, when the range pool lends its slots to 19 files at once,
// took the run beyond 100 MB.
const writeBuffer = 2 << 20

// smallFile: a Put of a file of known size below it reads it whole into a buffer of its own size
// instead of taking one of writeBuffers, and writes it through the page cache.
const smallFile = 1 << 20

// directAlign is the alignment of what contentWriter writes with O_DIRECT (the buffer's address,
// its length and the file offset): 4096 covers the logical block size of the devices in use.
const directAlign = 4096

// fsync syncs f (named name, relative to the root, for Options.Trace).
func (s *Store) fsync(f *os.File, name string) error {
	if fault := s.syncFault.Load(); fault != nil {
		if err := (*fault)(name); err != nil {
			return &fs.PathError{Op: "sync", Path: f.Name(), Err: err}
		}
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	if s.opts.Trace != nil {
		s.opts.Trace("fsync", name)
	}
	return nil
}

// syncDir fsyncs the directory dir ("." for the root) so that the entries made in it are
// durable.
func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return s.fsync(d, dir)
}

// syncDirs fsyncs the directory of key and the parents of dirs (directories on the way to key
// whose entries are not known to be durable), and then records dirs as durable.
func (s *Store) syncDirs(key string, dirs []string) error {
	for _, d := range parentsToSync(key, dirs) {
		if err := s.syncDir(d); err != nil {
			return err
		}
	}
	for _, d := range dirs {
		s.durableDirs.Store(d, true)
	}
	return nil
}

// parentsToSync lists, deepest first and without repeats, the directory of key and the parents
// of dirs.
func parentsToSync(key string, dirs []string) []string {
	out := []string{path.Dir(key)}
	for _, d := range slices.Backward(dirs) { // dirs is top down
		if p := path.Dir(d); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// rename publishes the temporary file tmp at key.
func (s *Store) rename(tmp, key string) error {
	if err := s.root.Rename(tmp, key); err != nil {
		return err
	}
	if s.opts.Trace != nil {
		s.opts.Trace("rename", key)
	}
	return nil
}

// Put writes r at key atomically, once it is complete and matches opts.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	if err := checkKey("put", key); err != nil {
		return store.Info{}, err
	}
	return s.commit(ctx, "put", key, r, opts, nil)
}

// commit writes r at key through a temporary file. With batched nil the file, its directory and
// any directory created on the way are durable when it returns; otherwise they are left to the
// batch, which batched is told of once the file is in place.
func (s *Store) commit(ctx context.Context, op, key string, r io.Reader, opts store.PutOptions, batched func(key, etag, sum string, dirs []string)) (store.Info, error) {
	tmp, info, dirs, err := s.writeTemp(ctx, op, key, r, opts, batched == nil)
	if err != nil {
		return store.Info{}, err
	}
	if err := s.rename(tmp, key); err != nil {
		s.root.Remove(tmp)
		return store.Info{}, s.fail(op, key, err)
	}
	if batched != nil {
		batched(key, info.ETag, info.SHA256, dirs)
		return info, nil
	}
	if err := s.syncDirs(key, dirs); err != nil {
		return store.Info{}, s.fail(op, key, err)
	}
	return info, nil
}

// Delete removes the file at key and then every directory above it that became empty, up to
// (not including) the root. A missing key, or a key naming a directory, is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey("delete", key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &store.Error{Op: "delete", Key: key, Err: err}
	}
	fi, err := s.root.Lstat(key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return s.fail("delete", key, err)
	}
	if fi.IsDir() {
		return nil
	}
	if err := s.root.Remove(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.fail("delete", key, err)
	}
	s.removeEmptyParents(key)
	if err := s.syncDir(path.Dir(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.fail("delete", key, err)
	}
	return nil
}

// removeEmptyParents removes the directories above name while they are empty.
func (s *Store) removeEmptyParents(name string) {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		fi, err := s.root.Lstat(dir)
		if err != nil || !fi.IsDir() {
			return
		}
		if err := s.root.Remove(dir); err != nil {
			return // not empty (ENOTEMPTY/EEXIST), or gone
		}
		s.durableDirs.Delete(dir)
	}
}

// entry is one name in a directory, with the key it sorts by: a directory sorts as "name/", so
// that keys come out in lexical order ("a-b" < "a/x" < "a0").
type entry struct {
	name string
	sort string
	dir  bool
}

// readDir returns the entries of dir (a key prefix ending before a "/", "." for the root) in
// key order. Temporary files are left out; symlinks are resolved (inside the root) to a regular
// file, or left out.
func (s *Store) readDir(dir string) ([]entry, error) {
	d, err := s.root.Open(dir)
	if err != nil {
		return nil, err
	}
	des, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		switch t := de.Type(); {
		case t.IsDir():
			entries = append(entries, entry{name: name, sort: name + "/", dir: true})
		case t.IsRegular():
			if !strings.HasPrefix(name, TempPrefix) {
				entries = append(entries, entry{name: name, sort: name})
			}
		case t&fs.ModeSymlink != 0:
			if fi, err := s.root.Stat(path.Join(dir, name)); err == nil && fi.Mode().IsRegular() {
				entries = append(entries, entry{name: name, sort: name})
			}
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.sort, b.sort) })
	return entries, nil
}

// List calls fn for every object whose key starts with prefix, in lexical key order, with its
// recorded sha256 when there is one. Temporary files are never listed.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	// Start in the deepest directory the prefix names completely.
	start := "."
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = prefix[:i]
	}
	if err := store.ValidPrefix(prefix); err != nil {
		return &store.Error{Op: "list", Key: prefix, Err: err}
	}
	err := s.walk(ctx, start, prefix, fn)
	if stop, ok := err.(stopError); ok {
		return stop.err
	}
	return err
}

// stopError carries an error returned by List's fn out of the walk, to be returned unchanged.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

func (s *Store) walk(ctx context.Context, dir, prefix string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return &store.Error{Op: "list", Key: prefix, Err: err}
	}
	entries, err := s.readDir(dir)
	if err != nil {
		if dir != "." && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
			return nil // nothing under this prefix
		}
		return s.fail("list", prefix, err)
	}
	for _, e := range entries {
		key := e.name
		if dir != "." {
			key = dir + "/" + e.name
		}
		if e.dir {
			if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				if err := s.walk(ctx, key, prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return &store.Error{Op: "list", Key: prefix, Err: err}
		}
		f, info, err := s.openFile(key)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listing
			}
			return s.fail("list", key, err)
		}
		f.Close()
		if err := fn(info); err != nil {
			return stopError{err}
		}
	}
	return nil
}

// Copy copies the file at srcKey to dstKey through a temporary file, hashing the bytes again.
// The copy fails with store.ErrChecksum when the content no longer matches the sha256 recorded
// on the source, or the size and sha256 given in opts.
func (s *Store) Copy(ctx context.Context, dstKey, srcKey string, opts store.PutOptions) (store.Info, error) {
	return s.copy(ctx, dstKey, srcKey, opts, nil)
}

func (s *Store) copy(ctx context.Context, dstKey, srcKey string, opts store.PutOptions, batched func(key, etag, sum string, dirs []string)) (store.Info, error) {
	if err := checkKey("copy", srcKey); err != nil {
		return store.Info{}, err
	}
	if err := checkKey("copy", dstKey); err != nil {
		return store.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: fmt.Errorf("from %s: %w", srcKey, err)}
	}
	f, src, err := s.openFile(srcKey)
	if err != nil {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: s.fail("open", srcKey, err)}
	}
	defer f.Close()
	if opts.Size >= 0 && opts.Size != src.Size {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: fmt.Errorf("from %s: %w: size %d, expected %d", srcKey, store.ErrChecksum, src.Size, opts.Size)}
	}
	if opts.SHA256 != "" && src.SHA256 != "" && !strings.EqualFold(opts.SHA256, src.SHA256) {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: fmt.Errorf("from %s: %w: sha256 %s, expected %s", srcKey, store.ErrChecksum, src.SHA256, opts.SHA256)}
	}
	check := store.PutOptions{Size: src.Size, SHA256: opts.SHA256}
	if check.SHA256 == "" {
		check.SHA256 = src.SHA256
	}
	return s.commit(ctx, "copy", dstKey, f, check, batched)
}

// CleanLeftovers removes the temporary files (see TempPrefix) that opts selects, left behind by
// killed runs, and the directories they leave empty (store.LeftoverCleaner). opts.Mine is given
// the prefix of each temporary file's directory ("a/b/", "" for the root): a temporary file's
// name does not say which key it was for. It returns how many files it removed.
func (s *Store) CleanLeftovers(ctx context.Context, opts store.LeftoverOptions) (int, error) {
	cutoff := time.Now().Add(-opts.OlderThan)
	removed := 0
	var walk func(dir string) error
	walk = func(dir string) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cleaning temporary files in %s: %w", s.dir, err)
		}
		d, err := s.root.Open(dir)
		if err != nil {
			return s.fail("clean", dir, err)
		}
		des, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return s.fail("clean", dir, err)
		}
		for _, de := range des {
			name := path.Join(dir, de.Name())
			if de.IsDir() {
				if err := walk(name); err != nil {
					return err
				}
				continue
			}
			if !de.Type().IsRegular() || !strings.HasPrefix(de.Name(), TempPrefix) || de.Name() == SwapLockName {
				continue
			}
			if opts.Mine != nil && !opts.Mine(dirPrefix(dir)) {
				continue
			}
			fi, err := de.Info()
			if err != nil || opts.OlderThan > 0 && !fi.ModTime().Before(cutoff) {
				continue
			}
			if err := s.root.Remove(name); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return s.fail("clean", name, err)
			}
			removed++
			s.removeEmptyParents(name)
		}
		return nil
	}
	err := walk(".")
	return removed, err
}

// dirPrefix is the key prefix of a directory walked from "." ("" for the root, else "a/b/").
func dirPrefix(dir string) string {
	if dir == "." || dir == "" {
		return ""
	}
	return dir + "/"
}

// contentTag is the Swapper tag of a file's content.
func contentTag(data []byte) string {
	h := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(h[:])
}

// readTagged reads the file at key whole (at most limit bytes when limit > 0) with its tag.
func (s *Store) readTagged(key string, limit int64) ([]byte, string, error) {
	f, info, err := s.openFile(key)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	if limit > 0 && info.Size > limit {
		return nil, "", fmt.Errorf("%d bytes, more than the %d expected", info.Size, limit)
	}
	r := io.Reader(f)
	if limit > 0 {
		r = io.LimitReader(f, limit+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, "", err
	}
	if limit > 0 && int64(len(data)) > limit {
		return nil, "", fmt.Errorf("more than the %d bytes expected", limit)
	}
	return data, contentTag(data), nil
}

// ReadTagged reads the file at key with its tag, the sha256 of its content.
func (s *Store) ReadTagged(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	if err := checkKey("read", key); err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", &store.Error{Op: "read", Key: key, Err: err}
	}
	data, tag, err := s.readTagged(key, limit)
	if err != nil {
		return nil, "", s.fail("read", key, err)
	}
	return data, tag, nil
}

// Swap writes data at key only if the file's content still has the given tag ("": only if there
// is no file), holding the directory's swap lock from the comparison to the rename.
func (s *Store) Swap(ctx context.Context, key string, data []byte, tag string, opts store.PutOptions) (string, error) {
	if err := checkKey("swap", key); err != nil {
		return "", err
	}
	unlock, err := s.lockDir(ctx, path.Dir(key))
	if err != nil {
		return "", s.fail("swap", key, err)
	}
	defer unlock()
	_, cur, err := s.readTagged(key, 0)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return "", s.fail("swap", key, err)
	}
	switch {
	case tag == "" && exists:
		return "", &store.Error{Op: "swap", Key: key, Err: fmt.Errorf("%w: it exists", store.ErrPrecondition)}
	case tag != "" && !exists:
		return "", &store.Error{Op: "swap", Key: key, Err: fmt.Errorf("%w: it no longer exists", store.ErrPrecondition)}
	case tag != "" && cur != tag:
		return "", &store.Error{Op: "swap", Key: key, Err: fmt.Errorf("%w: its content changed", store.ErrPrecondition)}
	}
	opts.Size = int64(len(data))
	if _, err := s.commit(ctx, "swap", key, bytes.NewReader(data), opts, nil); err != nil {
		return "", err
	}
	return contentTag(data), nil
}

// lockDir takes an exclusive flock(2) lock on dir's SwapLockName file, creating dir and the file
// when needed, and returns the function that releases it. It waits for another holder until ctx
// is done.
func (s *Store) lockDir(ctx context.Context, dir string) (func(), error) {
	name := path.Join(dir, SwapLockName)
	var f *os.File
	var err error
	for range 5 { // a concurrent Delete may remove the directory between mkdirs and the open
		if _, err = s.mkdirs(dir); err != nil {
			return nil, err
		}
		f, err = s.root.OpenFile(name, os.O_RDONLY|os.O_CREATE, s.opts.FileMode)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	wait := time.Millisecond
	for {
		var ferr error
		if err := rc.Control(func(fd uintptr) { ferr = tryLock(fd) }); err != nil {
			f.Close()
			return nil, err
		}
		if ferr == nil {
			return func() { unlockClose(f) }, nil
		}
		if !errors.Is(ferr, errLockBusy) {
			f.Close()
			return nil, &fs.PathError{Op: "lock", Path: name, Err: ferr}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the lock on %s: %w", name, context.Cause(ctx))
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}
