// Package memstore is an in-memory store.Store, for tests. It keeps every object in a map behind
// a mutex and implements store.Copier, store.CreateExcluder and store.Swapper.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

var (
	_ store.Store          = (*Store)(nil)
	_ store.Copier         = (*Store)(nil)
	_ store.CreateExcluder = (*Store)(nil)
	_ store.Swapper        = (*Store)(nil)
	_ store.Describer      = (*Store)(nil)
)

type object struct {
	data    []byte
	modTime time.Time
	sha256  string
	gen     uint64 // which write made it: its Swapper tag
}

// Store is an in-memory store. The zero value is not usable; call New. It is safe for concurrent
// use.
type Store struct {
	mu      sync.Mutex
	objects map[string]object
	gen     uint64 // writes so far
}

// store saves o at key, giving it the next generation; s.mu must be held.
func (s *Store) store(key string, o object) object {
	s.gen++
	o.gen = s.gen
	s.objects[key] = o
	return o
}

// New returns an empty store.
func New() *Store {
	return &Store{objects: make(map[string]object)}
}

// Describe names the store for messages.
func (s *Store) Describe() string { return "memory" }

func (s *Store) info(key string, o object) store.Info {
	return store.Info{Key: key, Size: int64(len(o.data)), ModTime: o.modTime, SHA256: o.sha256, ETag: tagOf(o)}
}

func (s *Store) get(key string) (object, error) {
	if err := store.ValidKey(key); err != nil {
		return object{}, fmt.Errorf("memory store: %w", err)
	}
	s.mu.Lock()
	o, ok := s.objects[key]
	s.mu.Unlock()
	if !ok {
		return object{}, fmt.Errorf("memory store: %s: %w", key, store.ErrNotExist)
	}
	return o, nil
}

// Stat describes the object at key.
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	if err := ctx.Err(); err != nil {
		return store.Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	o, err := s.get(key)
	if err != nil {
		return store.Info{}, err
	}
	return s.info(key, o), nil
}

// Open reads the object at key from offset on. The reader sees the object as it was when Open
// was called, even if it is overwritten meanwhile.
func (s *Store) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	o, err := s.get(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > int64(len(o.data)) {
		return nil, fmt.Errorf("memory store: open %s: offset %d outside the object's %d bytes", key, offset, len(o.data))
	}
	return io.NopCloser(bytes.NewReader(o.data[offset:])), nil
}

// readVerified reads all of r through a store.Verifier, checking ctx between reads, and returns
// the bytes and their sha256 once they match opts.
func readVerified(ctx context.Context, key string, r io.Reader, opts store.PutOptions) ([]byte, string, error) {
	v := store.NewVerifier(key, r, opts)
	var buf bytes.Buffer
	if opts.Size > 0 {
		// The declared size is a claim, not a fact: grow for it only up to a bound.
		buf.Grow(int(min(opts.Size, 8<<20)))
	}
	chunk := make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, "", fmt.Errorf("memory store: put %s: %w", key, err)
		}
		n, err := v.Read(chunk)
		buf.Write(chunk[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", fmt.Errorf("memory store: put %s: %w", key, err)
		}
	}
	if err := v.Check(); err != nil {
		return nil, "", fmt.Errorf("memory store: put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("memory store: put %s: %w", key, err)
	}
	return buf.Bytes(), v.Sum(), nil
}

// Put stores the content of r at key once it is complete and matches opts.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	if err := store.ValidKey(key); err != nil {
		return store.Info{}, fmt.Errorf("memory store: %w", err)
	}
	data, sum, err := readVerified(ctx, key, r, opts)
	if err != nil {
		return store.Info{}, err
	}
	o := object{data: data, modTime: time.Now(), sha256: sum}
	s.mu.Lock()
	o = s.store(key, o)
	s.mu.Unlock()
	return s.info(key, o), nil
}

// Delete removes the object at key; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := store.ValidKey(key); err != nil {
		return fmt.Errorf("memory store: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	s.mu.Lock()
	delete(s.objects, key)
	s.mu.Unlock()
	return nil
}

// List calls fn for every object whose key starts with prefix, in lexical key order. It lists a
// snapshot taken when it starts; fn may call the store.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	var infos []store.Info
	s.mu.Lock()
	for k, o := range s.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, s.info(k, o))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(infos, func(a, b store.Info) int { return strings.Compare(a.Key, b.Key) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memory store: list %q: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Copy copies the object at srcKey to dstKey, keeping its sha256. When opts gives a size or a
// sha256, the source must match them.
func (s *Store) Copy(ctx context.Context, dstKey, srcKey string, opts store.PutOptions) (store.Info, error) {
	if err := store.ValidKey(dstKey); err != nil {
		return store.Info{}, fmt.Errorf("memory store: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return store.Info{}, fmt.Errorf("copy %s to %s: %w", srcKey, dstKey, err)
	}
	src, err := s.get(srcKey)
	if err != nil {
		return store.Info{}, fmt.Errorf("copy to %s: %w", dstKey, err)
	}
	if opts.Size >= 0 && opts.Size != int64(len(src.data)) {
		return store.Info{}, fmt.Errorf("memory store: copy %s to %s: %w: size %d, expected %d", srcKey, dstKey, store.ErrChecksum, len(src.data), opts.Size)
	}
	if opts.SHA256 != "" && !strings.EqualFold(opts.SHA256, src.sha256) {
		return store.Info{}, fmt.Errorf("memory store: copy %s to %s: %w: sha256 %s, expected %s", srcKey, dstKey, store.ErrChecksum, src.sha256, opts.SHA256)
	}
	o := object{data: src.data, modTime: time.Now(), sha256: src.sha256}
	s.mu.Lock()
	o = s.store(dstKey, o)
	s.mu.Unlock()
	return s.info(dstKey, o), nil
}

// CreateExclusive stores data at key only if key does not exist yet; otherwise it fails with
// store.ErrExist. opts.Size is taken from len(data).
func (s *Store) CreateExclusive(ctx context.Context, key string, data []byte, opts store.PutOptions) (store.Info, error) {
	if err := store.ValidKey(key); err != nil {
		return store.Info{}, fmt.Errorf("memory store: %w", err)
	}
	opts.Size = int64(len(data))
	data, sum, err := readVerified(ctx, key, bytes.NewReader(data), opts)
	if err != nil {
		return store.Info{}, err
	}
	o := object{data: slices.Clone(data), modTime: time.Now(), sha256: sum}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[key]; ok {
		return store.Info{}, fmt.Errorf("memory store: create %s: %w", key, store.ErrExist)
	}
	o = s.store(key, o)
	return s.info(key, o), nil
}

func tagOf(o object) string { return "g" + strconv.FormatUint(o.gen, 10) }

// ReadTagged returns the object at key and its tag: the number of the write that made it, so a
// rewrite with the same bytes still changes the tag.
func (s *Store) ReadTagged(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("memory store: read %s: %w", key, err)
	}
	o, err := s.get(key)
	if err != nil {
		return nil, "", err
	}
	if limit > 0 && int64(len(o.data)) > limit {
		return nil, "", fmt.Errorf("memory store: read %s: %d bytes, more than the %d expected", key, len(o.data), limit)
	}
	return slices.Clone(o.data), tagOf(o), nil
}

// Swap stores data at key only if the object there has the given tag ("": only if there is none).
func (s *Store) Swap(ctx context.Context, key string, data []byte, tag string, opts store.PutOptions) (string, error) {
	if err := store.ValidKey(key); err != nil {
		return "", fmt.Errorf("memory store: %w", err)
	}
	opts.Size = int64(len(data))
	data, sum, err := readVerified(ctx, key, bytes.NewReader(data), opts)
	if err != nil {
		return "", err
	}
	o := object{data: slices.Clone(data), modTime: time.Now(), sha256: sum}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.objects[key]
	switch {
	case tag == "" && ok:
		return "", fmt.Errorf("memory store: swap %s: %w: it exists", key, store.ErrPrecondition)
	case tag != "" && !ok:
		return "", fmt.Errorf("memory store: swap %s: %w: it no longer exists", key, store.ErrPrecondition)
	case tag != "" && tagOf(cur) != tag:
		return "", fmt.Errorf("memory store: swap %s: %w: version %s, expected %s", key, store.ErrPrecondition, tagOf(cur), tag)
	}
	return tagOf(s.store(key, o)), nil
}
