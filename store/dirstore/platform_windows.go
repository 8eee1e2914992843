package dirstore

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/windows"
)

// On Windows (built, not exercised by the tests, which run on Linux): there is no inode number in
// fs.FileInfo, so an ETag is the size and modification time only; no extended attributes are
// used, so Stat and List report no recorded SHA256; Swap's directory lock is LockFileEx on
// SwapLockName instead of flock(2).

// inode is 0: fs.FileInfo carries no file index on Windows.
func inode(fs.FileInfo) uint64 { return 0 }

func getxattr(uintptr, string, []byte) (int, error) { return 0, errors.ErrUnsupported }

func setxattr(uintptr, string, []byte) error { return errors.ErrUnsupported }

// errLockBusy is tryLock's answer when another handle holds the lock.
var errLockBusy = errors.New("locked by another")

// tryLock takes an exclusive LockFileEx lock on the first byte of fd's file without waiting.
func tryLock(fd uintptr) error {
	err := windows.LockFileEx(windows.Handle(fd), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, new(windows.Overlapped))
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		return errLockBusy
	}
	return err
}

// unlockClose releases tryLock's lock before closing f (Windows releases the locks of a closed
// handle only eventually).
func unlockClose(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = windows.UnlockFileEx(windows.Handle(fd), 0, 1, 0, new(windows.Overlapped)) })
	}
	f.Close()
}

// syncOpenFlag opens a file for the batch flush's fsync: FlushFileBuffers needs write access.
const syncOpenFlag = os.O_RDWR
