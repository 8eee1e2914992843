//go:build !unix

package testserver

import "errors"

// Pause stops a test's own server as a hung host would (SIGSTOP): Unix only.
func (s *Server) Pause() error { return errors.New("pausing a server needs SIGSTOP (Unix)") }

// Resume lets a server Pause stopped go on: Unix only.
func (s *Server) Resume() error { return errors.New("resuming a server needs SIGCONT (Unix)") }
