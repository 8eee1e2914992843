package streams

import "github.com/ssmirror/ssmirror/store"

// ValidPath checks a catalogue path before it touches a store (see store.ValidKey: not empty, not
// absolute, no "." or ".." segment, no empty segment, no backslash, no NUL or control
// characters).
func ValidPath(p string) error { return store.ValidKey(p) }
