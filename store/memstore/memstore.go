// Package memstore is an in-memory store.Target, for tests. It keeps every object in a map behind
// a mutex and implements store.Copier, and store.CopierFrom between memory stores (so that the
// CopierFrom contract is testable without a server).
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
	_ store.Target     = (*Store)(nil)
	_ store.Copier     = (*Store)(nil)
	_ store.CopierFrom = (*Store)(nil)
	_ store.Describer  = (*Store)(nil)
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

// get returns the object at key; its errors are to be wrapped in a store.Error by the caller.
func (s *Store) get(ctx context.Context, key string) (object, error) {
	if err := store.ValidKey(key); err != nil {
		return object{}, err
	}
	if err := ctx.Err(); err != nil {
		return object{}, err
	}
	s.mu.Lock()
	o, ok := s.objects[key]
	s.mu.Unlock()
	if !ok {
		return object{}, fmt.Errorf("memory store: %w", store.ErrNotExist)
	}
	return o, nil
}

// Stat describes the object at key.
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	o, err := s.get(ctx, key)
	if err != nil {
		return store.Info{}, &store.Error{Op: "stat", Key: key, Err: err}
	}
	return s.info(key, o), nil
}

// Open reads the object at key from offset on. The reader sees the object as it was when Open
// was called, even if it is overwritten meanwhile.
func (s *Store) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	o, err := s.get(ctx, key)
	if err != nil {
		return nil, &store.Error{Op: "open", Key: key, Err: err}
	}
	if offset < 0 || offset > int64(len(o.data)) {
		return nil, &store.Error{Op: "open", Key: key, Err: fmt.Errorf("memory store: offset %d outside the object's %d bytes", offset, len(o.data))}
	}
	return io.NopCloser(bytes.NewReader(o.data[offset:])), nil
}

// readVerified reads all of r through a store.Verifier, checking ctx between reads, and returns
// the bytes and their sha256 once they match opts. Its errors are *store.Error for op on key.
func readVerified(ctx context.Context, op, key string, r io.Reader, opts store.PutOptions) ([]byte, string, error) {
	if err := store.ValidKey(key); err != nil {
		return nil, "", &store.Error{Op: op, Key: key, Err: err}
	}
	v := store.NewVerifier(key, r, opts)
	var buf bytes.Buffer
	if opts.Size > 0 {
		// The declared size is a claim, not a fact: grow for it only up to a bound.
		buf.Grow(int(min(opts.Size, 8<<20)))
	}
	chunk := make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, "", &store.Error{Op: op, Key: key, Err: err}
		}
		n, err := v.Read(chunk)
		buf.Write(chunk[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", store.NewError(op, key, err)
		}
	}
	if err := v.Check(); err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", &store.Error{Op: op, Key: key, Err: err}
	}
	return buf.Bytes(), v.Sum(), nil
}

// Put stores the content of r at key once it is complete and matches opts.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	data, sum, err := readVerified(ctx, "put", key, r, opts)
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
		return &store.Error{Op: "delete", Key: key, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return &store.Error{Op: "delete", Key: key, Err: err}
	}
	s.mu.Lock()
	delete(s.objects, key)
	s.mu.Unlock()
	return nil
}

// List calls fn for every object whose key starts with prefix, in lexical key order. It lists a
// snapshot taken when it starts; fn may call the store.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := store.ValidPrefix(prefix); err != nil {
		return &store.Error{Op: "list", Key: prefix, Err: err}
	}
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
			return &store.Error{Op: "list", Key: prefix, Err: err}
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return &store.Error{Op: "list", Key: prefix, Err: err}
	}
	return nil
}

// Copy copies the object at srcKey to dstKey, keeping its sha256. When opts gives a size or a
// sha256, the source must match them.
func (s *Store) Copy(ctx context.Context, dstKey, srcKey string, opts store.PutOptions) (store.Info, error) {
	return s.copyFrom(ctx, dstKey, s, srcKey, opts)
}

// CanCopyFrom reports whether src is (or wraps, found with store.As) a memory store.
func (s *Store) CanCopyFrom(src store.Target) bool {
	from, ok := store.As[*Store](src)
	return ok && from != nil
}

// CopyFrom copies src's object at srcKey to dstKey, keeping its sha256, when src is a memory
// store (CanCopyFrom); the source must match opts' size and sha256 when given.
func (s *Store) CopyFrom(ctx context.Context, dstKey string, src store.Target, srcKey string, opts store.PutOptions) (store.Info, error) {
	if err := store.ValidKey(dstKey); err != nil {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: err}
	}
	from, ok := store.As[*Store](src)
	if !ok || from == nil {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: fmt.Errorf("from %s: memory store: %T is not a memory store", srcKey, src)}
	}
	return s.copyFrom(ctx, dstKey, from, srcKey, opts)
}

func (s *Store) copyFrom(ctx context.Context, dstKey string, from *Store, srcKey string, opts store.PutOptions) (store.Info, error) {
	if err := store.ValidKey(dstKey); err != nil {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: err}
	}
	src, err := from.get(ctx, srcKey)
	if err != nil {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: fmt.Errorf("from %s: %w", srcKey, err)}
	}
	if opts.Size >= 0 && opts.Size != int64(len(src.data)) {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: fmt.Errorf("from %s: %w: size %d, expected %d", srcKey, store.ErrChecksum, len(src.data), opts.Size)}
	}
	if opts.SHA256 != "" && !strings.EqualFold(opts.SHA256, src.sha256) {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: fmt.Errorf("from %s: %w: sha256 %s, expected %s", srcKey, store.ErrChecksum, src.sha256, opts.SHA256)}
	}
	if err := ctx.Err(); err != nil {
		return store.Info{}, &store.Error{Op: "copy", Key: dstKey, Err: err}
	}
	o := object{data: src.data, modTime: time.Now(), sha256: src.sha256}
	s.mu.Lock()
	o = s.store(dstKey, o)
	s.mu.Unlock()
	return s.info(dstKey, o), nil
}

func tagOf(o object) string { return "g" + strconv.FormatUint(o.gen, 10) }

// ReadTagged returns the object at key and its tag: the number of the write that made it, so a
// rewrite with the same bytes still changes the tag.
func (s *Store) ReadTagged(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	o, err := s.get(ctx, key)
	if err != nil {
		return nil, "", &store.Error{Op: "read", Key: key, Err: err}
	}
	if limit > 0 && int64(len(o.data)) > limit {
		return nil, "", &store.Error{Op: "read", Key: key, Err: fmt.Errorf("memory store: %d bytes, more than the %d expected", len(o.data), limit)}
	}
	return slices.Clone(o.data), tagOf(o), nil
}

// Swap stores data at key only if the object there has the given tag ("": only if there is none).
func (s *Store) Swap(ctx context.Context, key string, data []byte, tag string, opts store.PutOptions) (string, error) {
	opts.Size = int64(len(data))
	data, sum, err := readVerified(ctx, "swap", key, bytes.NewReader(data), opts)
	if err != nil {
		return "", err
	}
	o := object{data: slices.Clone(data), modTime: time.Now(), sha256: sum}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.objects[key]
	switch {
	case tag == "" && ok:
		return "", &store.Error{Op: "swap", Key: key, Err: fmt.Errorf("memory store: %w: it exists", store.ErrPrecondition)}
	case tag != "" && !ok:
		return "", &store.Error{Op: "swap", Key: key, Err: fmt.Errorf("memory store: %w: it no longer exists", store.ErrPrecondition)}
	case tag != "" && tagOf(cur) != tag:
		return "", &store.Error{Op: "swap", Key: key, Err: fmt.Errorf("memory store: %w: version %s, expected %s", store.ErrPrecondition, tagOf(cur), tag)}
	}
	return tagOf(s.store(key, o)), nil
}
