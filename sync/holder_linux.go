package sync

import (
	"errors"
	"os"
	"strconv"
	"strings"
	gosync "sync"
	"syscall"
)

// process identifies a process beyond its PID: where the PID means something.
type process struct {
	host   string
	pid    int
	bootID string // /proc/sys/kernel/random/boot_id: this boot of this kernel
	pidNS  string // /proc/self/ns/pid: "pid:[inode]", the PID namespace
	start  uint64 // start time in clock ticks after boot (/proc/self/stat field 22)
	// procOurs is true when /proc shows this process's PID namespace, so /proc/PID/stat of a
	// PID from this namespace describes that process.
	procOurs bool
}

var currentProcess = gosync.OnceValue(func() process {
	p := process{pid: os.Getpid()}
	p.host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		p.bootID = strings.TrimSpace(string(b))
	}
	if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		p.pidNS = ns
	}
	if self, err := os.Readlink("/proc/self"); err == nil && self == strconv.Itoa(p.pid) {
		p.procOurs = true
		p.start, _ = procStart(p.pid)
	}
	return p
})

// holderGone reports whether the lease's holder provably no longer runs, so its lease need not
// be waited out: the lease was taken on this host, in this boot, in this PID namespace (where its
// PID means what it says), and that PID is now free or belongs to a process started at another
// time. Anything less (another machine or container with the same host name, another PID
// namespace, a lease without these fields) proves nothing: the lease is waited out.
func holderGone(l Lease, self process) bool {
	if l.Host == "" || l.Host != self.host || l.BootID == "" || l.BootID != self.bootID ||
		l.PIDNamespace == "" || l.PIDNamespace != self.pidNS || l.PID <= 0 || !self.procOurs {
		return false
	}
	if l.PID == self.pid {
		// This process has the PID: the holder was an earlier process that had it.
		return l.ProcStart != 0 && self.start != 0 && l.ProcStart != self.start
	}
	if err := syscall.Kill(l.PID, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	if l.ProcStart == 0 {
		return false
	}
	start, err := procStart(l.PID)
	if err != nil {
		// Gone between the two looks, or unreadable: gone only if it is not there at all.
		return errors.Is(err, os.ErrNotExist)
	}
	return start != l.ProcStart
}

// procStart reads the start time of process pid (clock ticks after boot) from /proc/PID/stat.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// "pid (comm) state ppid …": comm may hold anything, so fields count from the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("unreadable stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, errors.New("unreadable stat")
	}
	return strconv.ParseUint(fields[19], 10, 64) // field 22 overall; fields[0] is field 3
}
