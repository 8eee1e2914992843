//go:build unix

package dirstore

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// inode is the file's inode number (0 when fi does not say).
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

func getxattr(fd uintptr, name string, buf []byte) (int, error) {
	return unix.Fgetxattr(int(fd), name, buf)
}

func setxattr(fd uintptr, name string, val []byte) error {
	return unix.Fsetxattr(int(fd), name, val, 0)
}

// errLockBusy is tryLock's answer when another descriptor holds the lock.
var errLockBusy = errors.New("locked by another")

// tryLock takes an exclusive flock(2) lock on fd without waiting.
func tryLock(fd uintptr) error {
	err := unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EINTR) {
		return errLockBusy
	}
	return err
}

// unlockClose releases tryLock's lock: closing the only descriptor does.
func unlockClose(f *os.File) { f.Close() }

// syncOpenFlag opens a file for the batch flush's fsync: fsync(2) works on a read-only
// descriptor, which a file whose mode forbids writing still gives.
const syncOpenFlag = os.O_RDONLY
