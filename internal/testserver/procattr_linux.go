package testserver

import "syscall"

// sysProcAttr makes the kernel kill the server when the test binary dies, so that a shared server
// never outlives its tests.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
