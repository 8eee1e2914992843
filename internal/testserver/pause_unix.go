//go:build unix

package testserver

import (
	"errors"
	"syscall"
)

// Pause stops a test's own server with SIGSTOP, as a hung host would: its connections stay open
// and nothing answers. Resume (SIGCONT) lets it go on; the test's cleanup kills it paused or
// not.
func (s *Server) Pause() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("no process of this test's own to pause")
	}
	return s.cmd.Process.Signal(syscall.SIGSTOP)
}

// Resume lets a server Pause stopped go on (SIGCONT).
func (s *Server) Resume() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("no process of this test's own to resume")
	}
	return s.cmd.Process.Signal(syscall.SIGCONT)
}
