package streams

import (
	"path"
	"strings"

	"github.com/ssmirror/ssmirror/store"
)

// ValidPath checks a catalogue path before it touches a store (see store.ValidKey: not empty, not
// absolute, no "." or ".." segment, no empty segment, no backslash, no NUL or control
// characters).
func ValidPath(p string) error { return store.ValidKey(p) }

// ContentType names the media type a mirror publishes the file at key with (and a test
// upstream serves it with).
func ContentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".json"):
		return "application/json"
	case strings.HasSuffix(key, ".sjson"):
		return "text/plain; charset=utf-8"
	case strings.HasSuffix(key, ".gpg"):
		return "application/pgp-signature"
	case strings.HasSuffix(key, ".xz"):
		return "application/x-xz"
	case strings.HasSuffix(key, ".gz") || strings.HasSuffix(key, ".tgz"):
		return "application/gzip"
	case path.Base(key) == "squashfs.manifest" || strings.HasSuffix(key, ".manifest"):
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}
