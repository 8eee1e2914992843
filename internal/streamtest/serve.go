package streamtest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/streams"
)

// Corrupt makes the served bytes of path (a content or metadata path) differ from the catalogue
// by one inverted byte in the middle, keeping the size.
func (s *Stream) Corrupt(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.fixed[path]; ok {
		s.overrides[path] = flipMiddle
		return nil
	}
	if size, ok := s.Content[path]; ok {
		s.flips[path] = size / 2
		return nil
	}
	if _, ok := s.Files[path]; ok {
		s.overrides[path] = flipMiddle
		return nil
	}
	return fmt.Errorf("streamtest: corrupt %s: no such path", path)
}

func flipMiddle(r io.Reader) io.Reader {
	b, err := io.ReadAll(r)
	if err != nil {
		return errReader{err}
	}
	if len(b) > 0 {
		b[len(b)/2] ^= 0xff
	}
	return bytes.NewReader(b)
}

// SetOverride makes path (a content or metadata path) be served as f applied to its catalogue
// bytes; f nil removes the override (and any Corrupt). The result is held in memory while it is
// served: meant for small test streams.
func (s *Stream) SetOverride(path string, f func(io.Reader) io.Reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.flips, path)
	if f == nil {
		delete(s.overrides, path)
		return
	}
	s.overrides[path] = f
}

// SetHidden makes path answer 404 (and WriteDir skip it) while hidden is true, although the
// catalogue still lists it.
func (s *Stream) SetHidden(path string, hidden bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hidden {
		s.hidden[path] = true
	} else {
		delete(s.hidden, path)
	}
}

// Requests is the number of GET requests Handler answered for path (any status).
func (s *Stream) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// ContentRequests is the number of GET requests Handler answered for content paths.
func (s *Stream) ContentRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for path, c := range s.requests {
		if _, ok := s.Content[path]; ok {
			n += c
		}
	}
	return n
}

// ResetRequests sets every request count back to zero.
func (s *Stream) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.requests)
}

// served returns a reader over what is served at path, and whether it exists.
func (s *Stream) served(path string) (io.ReadSeeker, bool, error) {
	s.mu.Lock()
	hidden, f := s.hidden[path], s.overrides[path]
	flip, flipped := s.flips[path]
	s.mu.Unlock()
	if hidden {
		return nil, false, nil
	}
	var orig io.Reader
	if data, ok := s.Files[path]; ok {
		orig = bytes.NewReader(data)
	} else if _, ok := s.Content[path]; ok {
		if f == nil {
			if _, isFixed := s.fixed[path]; !isFixed {
				g := newGenContent(s.seed, path, s.Content[path])
				if flipped {
					g.flip = flip
				}
				return g.reader(), true, nil
			}
		}
		orig = s.OpenContent(path)
	} else {
		return nil, false, nil
	}
	if f != nil {
		orig = f(orig)
	}
	b, err := io.ReadAll(orig)
	if err != nil {
		return nil, true, fmt.Errorf("streamtest: override of %s: %w", path, err)
	}
	return bytes.NewReader(b), true, nil
}

// Handler serves the stream, rooted at "/": GET and HEAD, Range requests, Content-Length,
// 404 for unknown and hidden paths.
func (s *Stream) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		path := strings.TrimPrefix(r.URL.Path, "/")
		if r.Method == http.MethodGet {
			s.mu.Lock()
			s.requests[path]++
			s.mu.Unlock()
		}
		rs, ok, err := s.served(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", streams.ContentType(path))
		http.ServeContent(w, r, path, time.Time{}, rs)
	})
}

// WriteDir writes every metadata and content file, as served (Corrupt, SetOverride and
// SetHidden apply), under dir. Content is streamed, never held in memory.
func (s *Stream) WriteDir(dir string) error {
	paths := make([]string, 0, len(s.Files)+len(s.Content))
	for p := range s.Files {
		paths = append(paths, p)
	}
	for p := range s.Content {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		rs, ok, err := s.served(p)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := writeFile(filepath.Join(dir, filepath.FromSlash(p)), rs); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(name string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("streamtest: %w", err)
	}
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("streamtest: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("streamtest: writing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("streamtest: writing %s: %w", name, err)
	}
	return nil
}

// NewTestSigner makes a throwaway signing key and returns its signer and public keyring.
func NewTestSigner() (*sign.Signer, *sign.Keyring, error) {
	secret, public, err := sign.GenerateKey("streamtest", "streamtest@example.invalid", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("streamtest: generating a key: %w", err)
	}
	signer, err := sign.LoadSigner(bytes.NewReader(secret), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("streamtest: loading the generated key: %w", err)
	}
	kr, err := sign.ReadKeyring(bytes.NewReader(public))
	if err != nil {
		return nil, nil, fmt.Errorf("streamtest: reading the generated keyring: %w", err)
	}
	return signer, kr, nil
}
