//go:build !linux

package sync

import (
	"os"
	gosync "sync"
)

// process identifies a process beyond its PID. Outside Linux this code knows no boot id, PID
// namespace or process start time (they come from /proc), so a lease records only the host and
// PID, and a live-looking lease is never taken over early: it is waited out.
type process struct {
	host   string
	pid    int
	bootID string
	pidNS  string
	start  uint64
}

var currentProcess = gosync.OnceValue(func() process {
	p := process{pid: os.Getpid()}
	p.host, _ = os.Hostname()
	return p
})

// holderGone reports whether the lease's holder provably no longer runs. Without the boot and
// PID-namespace identity that only Linux's /proc gives, nothing proves it: always false, so the
// lease is waited out until it expires.
func holderGone(Lease, process) bool { return false }
