package sync

import (
	"os"
	"testing"
)

// TestHolderGone: a lease's PID is believed only on this host, boot and PID namespace, and then
// a PID that is free or that belongs to a process started at another time means the holder is
// gone.
func TestHolderGone(t *testing.T) {
	self := currentProcess()
	if self.bootID == "" || self.pidNS == "" || !self.procOurs || self.start == 0 {
		t.Skipf("no /proc identity here: %+v", self)
	}
	parent := os.Getppid()
	parentStart, err := procStart(parent)
	if err != nil {
		t.Fatal(err)
	}
	free := 1 << 22 // above pid_max's usual 4194304 limit: never a live process
	base := Lease{Host: self.host, BootID: self.bootID, PIDNamespace: self.pidNS}
	for _, tc := range []struct {
		name string
		edit func(*Lease)
		self func(*process)
		want bool
	}{
		{"free PID here", func(l *Lease) { l.PID = free }, nil, true},
		{"live PID", func(l *Lease) { l.PID, l.ProcStart = parent, parentStart }, nil, false},
		{"live PID, start unknown", func(l *Lease) { l.PID = parent }, nil, false},
		{"PID reused by a later process", func(l *Lease) { l.PID, l.ProcStart = parent, parentStart+1 }, nil, true},
		{"our own PID, earlier process", func(l *Lease) { l.PID, l.ProcStart = self.pid, self.start-1 }, nil, true},
		{"our own PID, this process", func(l *Lease) { l.PID, l.ProcStart = self.pid, self.start }, nil, false},
		{"another PID namespace", func(l *Lease) { l.PID, l.PIDNamespace = free, "pid:[4026531836999]" }, nil, false},
		{"another boot", func(l *Lease) { l.PID, l.BootID = free, "another-boot" }, nil, false},
		{"another host", func(l *Lease) { l.PID, l.Host = free, "another-host" }, nil, false},
		{"no namespace recorded", func(l *Lease) { l.PID, l.PIDNamespace = free, "" }, nil, false},
		{"no boot recorded", func(l *Lease) { l.PID, l.BootID = free, "" }, nil, false},
		{"our /proc is another namespace's", func(l *Lease) { l.PID = free }, func(p *process) { p.procOurs = false }, false},
	} {
		l, p := base, self
		tc.edit(&l)
		if tc.self != nil {
			tc.self(&p)
		}
		if got := holderGone(l, p); got != tc.want {
			t.Errorf("%s: holderGone = %v, want %v", tc.name, got, tc.want)
		}
	}
}
