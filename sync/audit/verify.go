// Package audit checks a published mirror without changing it (ssmirror verify): it reads the
// published catalogue, checking signatures, and checks that every item the mirror claims to hold
// is present with the catalogue's size and hashes. It reads a target only through the store
// interface and sync's exported API (LoadCatalogue, LoadState, SameVersion).
package audit

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sort"
	"strings"
	gosync "sync"

	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
	"golang.org/x/sync/errgroup"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// StartPath is the index to start from. Default: streams/v1/index.sjson when a keyring is
	// given or the target has it, else streams/v1/index.json.
	StartPath string
	// Keyring, when set, is what every metadata form must be signed by. Without it signatures
	// are not checked (signed forms are stripped unchecked).
	Keyring *sign.Keyring
	// Deep re-reads and hashes every object instead of trusting recorded hashes.
	Deep bool
	// Concurrency is the number of objects stat'ed or hashed at once (default 4).
	Concurrency int
	// MetadataLimit caps one metadata file's size (default sync.DefaultMetadataLimit).
	MetadataLimit int64
	// Log receives progress notes (nil: nothing is logged).
	Log *slog.Logger
}

// ProblemKind classifies a problem Verify found.
type ProblemKind string

// The problems Verify reports. Only ProblemUnknownHash and ProblemUnlisted are warnings; every
// other kind means a reader may be let down.
const (
	// ProblemMissing: an object (content or metadata) the mirror promises is not there.
	ProblemMissing ProblemKind = "missing"
	// ProblemSize: the object's size differs from the catalogue's.
	ProblemSize ProblemKind = "size mismatch"
	// ProblemSHA256: the object's recorded or computed sha256 differs from the catalogue's.
	ProblemSHA256 ProblemKind = "sha256 mismatch"
	// ProblemSHA512 and ProblemMD5: the object's sha512 or md5, computed by a deep verify of an
	// item whose catalogue gives that hash, differs from the catalogue's.
	ProblemSHA512 ProblemKind = "sha512 mismatch"
	ProblemMD5    ProblemKind = "md5 mismatch"
	// ProblemSignature: a metadata form does not verify against the keyring.
	ProblemSignature ProblemKind = "signature failure"
	// ProblemMetadata: metadata that cannot be read as a consistent catalogue (forms that
	// disagree, unparsable documents, conflicting items).
	ProblemMetadata ProblemKind = "bad metadata"
	// ProblemUnknownHash (warning): neither the store nor the mirror's state records the
	// object's sha256, and Deep was not asked for.
	ProblemUnknownHash ProblemKind = "unknown hash"
	// ProblemUnlisted (warning): the mirror's state holds an item whose path the published
	// catalogue does not list (normal for verbatim mirrors kept with --keep after upstream
	// dropped a version; a broken state otherwise). Readers cannot reach it, so it is not a fault.
	ProblemUnlisted ProblemKind = "not listed"
)

// Problem is one thing wrong with a mirror.
type Problem struct {
	// Path is the object concerned ("" when it cannot be told apart from the detail).
	Path    string      `json:"path"`
	Problem ProblemKind `json:"problem"`
	Detail  string      `json:"detail,omitempty"`
	Warning bool        `json:"warning,omitempty"`
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	// Target names the store audited.
	Target string `json:"target"`
	// StartPath is the index read.
	StartPath string `json:"start_path"`
	// SignaturesChecked is true when every metadata form was checked against a keyring.
	SignaturesChecked bool `json:"signatures_checked"`
	// FromState is true when the claimed items came from the mirror's state (what it holds),
	// false when every item the catalogue lists was checked.
	FromState bool `json:"from_state"`
	// ContentChecked is false when the metadata could not be read at all, so no content was checked.
	ContentChecked bool `json:"content_checked"`
	// Items and Files count the claimed items and their distinct content paths; Bytes their size.
	Items int   `json:"items"`
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Hashed counts the objects re-read and hashed (Deep).
	Hashed int `json:"hashed"`
	// Problems are sorted by path, then kind.
	Problems []Problem `json:"problems"`
}

// Failures counts the problems that are not warnings.
func (r *VerifyReport) Failures() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Warning {
			n++
		}
	}
	return n
}

// Warnings counts the problems that are only warnings.
func (r *VerifyReport) Warnings() int { return len(r.Problems) - r.Failures() }

// OK reports whether no failure was found.
func (r *VerifyReport) OK() bool { return r.Failures() == 0 }

func (r *VerifyReport) add(path string, kind ProblemKind, detail string) {
	r.Problems = append(r.Problems, Problem{Path: path, Problem: kind, Detail: detail,
		Warning: kind == ProblemUnknownHash || kind == ProblemUnlisted})
}

// claim is one distinct content path the mirror promises, and what it must be.
type claim struct {
	path   string
	size   int64
	sha256 string
	sha512 string
	md5    string
}

// Verify audits the mirror published in dst: it reads the published catalogue (checking every
// metadata form against opts.Keyring when given), then checks every item the mirror claims to
// hold — the state's held items when there is a state, else every item the catalogue lists — is
// present (one listing of the target) with the listed size and sha256 (as recorded by the store
// or the state; re-read and hashed with opts.Deep). What is wrong is in the report; the error is
// only for failing to read the target.
func Verify(ctx context.Context, dst store.Target, opts VerifyOptions) (*VerifyReport, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rep := &VerifyReport{Target: store.Describe(dst), SignaturesChecked: opts.Keyring != nil, Problems: []Problem{}}

	listed := map[string]store.Info{}
	if err := dst.List(ctx, "", func(info store.Info) error {
		listed[info.Key] = info
		return nil
	}); err != nil {
		return nil, fmt.Errorf("listing %s: %w", rep.Target, err)
	}
	st, err := sync.LoadState(ctx, dst)
	if err != nil {
		return nil, err
	}

	start := opts.StartPath
	if start == "" {
		start = sync.DefaultStartPath
		if _, ok := listed[start]; !ok && opts.Keyring == nil {
			start = strings.TrimSuffix(sync.DefaultStartPath, ".sjson") + ".json"
		}
	}
	rep.StartPath = start
	v := sync.Verification{Keyring: opts.Keyring}
	if opts.Keyring == nil && strings.HasSuffix(start, ".sjson") {
		v.NoVerify = true
	}

	cat, err := loadForAudit(ctx, dst, start, v, opts.MetadataLimit, rep)
	if err != nil {
		return nil, err
	}
	if cat == nil && opts.Keyring != nil && rep.has(ProblemSignature) {
		// The signatures failed: still audit the content, reading the metadata unchecked.
		cat, err = loadForAudit(ctx, dst, start, sync.Verification{NoVerify: strings.HasSuffix(start, ".sjson")}, opts.MetadataLimit, rep)
		if err != nil {
			return nil, err
		}
	}
	if cat == nil {
		sortProblems(rep.Problems)
		return rep, nil
	}
	rep.ContentChecked = true
	opts.Log.Info("catalogue read", "start", start, "products_files", len(cat.Products), "signatures_checked", rep.SignaturesChecked)

	claims := claimsOf(cat, st, rep)
	paths := make([]string, 0, len(claims))
	for p, c := range claims {
		paths = append(paths, p)
		rep.Bytes += c.size
	}
	sort.Strings(paths)
	rep.Files = len(paths)

	// Check presence and size from the listing; hashes from the listing, the state, a Stat, or
	// by reading (Deep), Concurrency objects at a time.
	var mu gosync.Mutex
	var ioErrs []error
	var g errgroup.Group // no cancellation: every object is checked, every failure reported
	g.SetLimit(opts.Concurrency)
	for _, p := range paths {
		c := claims[p]
		info, ok := listed[p]
		switch {
		case !ok:
			mu.Lock()
			rep.add(p, ProblemMissing, fmt.Sprintf("listed with %d bytes", c.size))
			mu.Unlock()
			continue
		case info.Size != c.size:
			mu.Lock()
			rep.add(p, ProblemSize, fmt.Sprintf("%d bytes, the catalogue says %d", info.Size, c.size))
			mu.Unlock()
			continue
		}
		g.Go(func() error {
			probs, hashed, err := checkObject(ctx, dst, c, info, st, opts.Deep)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				ioErrs = append(ioErrs, err)
				return nil
			}
			if hashed {
				rep.Hashed++
			}
			rep.Problems = append(rep.Problems, probs...)
			return nil
		})
	}
	g.Wait()
	if err := errors.Join(ioErrs...); err != nil {
		return nil, err
	}
	sortProblems(rep.Problems)
	return rep, nil
}

// claimsOf is what the mirror claims to hold, by path, with what the catalogue lists for it:
// the state's held items when there is a state (a held path the catalogue does not list is a
// problem in rep, and rep.FromState is set), else every item the catalogue lists. It counts
// them in rep.Items.
func claimsOf(cat *sync.Catalogue, st *sync.State, rep *VerifyReport) map[string]claim {
	// What the catalogue lists, by path.
	byPath := map[string]claim{}
	for _, it := range cat.Items() {
		if it.Path != "" {
			byPath[it.Path] = claim{path: it.Path, size: it.Size, sha256: it.SHA256, sha512: it.SHA512, md5: it.MD5}
		}
	}
	claims := map[string]claim{}
	if len(st.Held) > 0 {
		rep.FromState = true
		for _, vk := range st.Held.Keys() {
			for name, hi := range st.Held[vk] {
				if hi.Path == "" {
					continue
				}
				rep.Items++
				c, ok := byPath[hi.Path]
				if !ok {
					rep.add(hi.Path, ProblemUnlisted, fmt.Sprintf("held for %s %s, but the published catalogue does not list this path", vk, name))
					continue
				}
				claims[hi.Path] = c
			}
		}
	} else {
		for _, it := range cat.Items() {
			if it.Path != "" {
				rep.Items++
				claims[it.Path] = byPath[it.Path]
			}
		}
	}
	return claims
}

// checkObject checks one present object of the right size against its claim. It returns an
// error only when the object could not be read.
func checkObject(ctx context.Context, dst store.Target, c claim, info store.Info, st *sync.State, deep bool) ([]Problem, bool, error) {
	var rep VerifyReport
	if deep {
		if c.sha256 == "" && c.sha512 == "" && c.md5 == "" {
			rep.add(c.path, ProblemUnknownHash, "the catalogue lists no checksum for it")
			return rep.Problems, false, nil
		}
		rc, err := dst.Open(ctx, c.path, 0)
		if errors.Is(err, store.ErrNotExist) {
			rep.add(c.path, ProblemMissing, "listed by the target, gone when read")
			return rep.Problems, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		defer rc.Close()
		hs := map[string]hash.Hash{}
		want := map[string]string{"sha256": c.sha256, "sha512": c.sha512, "md5": c.md5}
		var ws []io.Writer
		for name, sum := range want {
			if sum == "" {
				continue
			}
			switch name {
			case "sha256":
				hs[name] = sha256.New()
			case "sha512":
				hs[name] = sha512.New()
			case "md5":
				hs[name] = md5.New()
			}
			ws = append(ws, hs[name])
		}
		n, err := io.Copy(io.MultiWriter(ws...), rc)
		if err != nil {
			return nil, false, fmt.Errorf("reading %s: %w", c.path, err)
		}
		if n != c.size {
			rep.add(c.path, ProblemSize, fmt.Sprintf("read %d bytes, the catalogue says %d", n, c.size))
			return rep.Problems, true, nil
		}
		for _, name := range []string{"sha256", "sha512", "md5"} {
			h, ok := hs[name]
			if !ok {
				continue
			}
			if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want[name]) {
				kind := map[string]ProblemKind{"sha256": ProblemSHA256, "sha512": ProblemSHA512, "md5": ProblemMD5}[name]
				rep.add(c.path, kind, fmt.Sprintf("content %s %s, the catalogue says %s", name, got, want[name]))
			}
		}
		return rep.Problems, true, nil
	}

	if c.sha256 == "" {
		rep.add(c.path, ProblemUnknownHash, "the catalogue lists no sha256 for it (a deep verify checks its other checksums)")
		return rep.Problems, false, nil
	}
	recorded, source := info.SHA256, "recorded by the store"
	if recorded == "" {
		si, err := dst.Stat(ctx, c.path)
		if errors.Is(err, store.ErrNotExist) {
			rep.add(c.path, ProblemMissing, "listed by the target, gone when stat'ed")
			return rep.Problems, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		recorded = si.SHA256
	}
	var replaced string
	if recorded == "" {
		// The record holds only for the object it was made for: not one replaced since
		// (another ETag).
		if obj, ok := st.Objects[c.path]; ok && obj.Size == info.Size && obj.SHA256 != "" {
			if sync.SameVersion(obj.ETag, info.ETag) {
				recorded, source = obj.SHA256, "recorded in the mirror state"
			} else {
				replaced = fmt.Sprintf("replaced since the mirror wrote it (ETag %s, recorded %s), so its recorded sha256 no longer applies: a deep verify reads it, a sync run fetches it again", info.ETag, obj.ETag)
			}
		}
	}
	switch {
	case replaced != "":
		rep.add(c.path, ProblemUnknownHash, replaced)
	case recorded == "":
		rep.add(c.path, ProblemUnknownHash, "no sha256 recorded for it (a deep verify reads it)")
	case !strings.EqualFold(recorded, c.sha256):
		rep.add(c.path, ProblemSHA256, fmt.Sprintf("sha256 %s %s, the catalogue says %s", source, recorded, c.sha256))
	}
	return rep.Problems, false, nil
}

// loadForAudit reads the catalogue for Verify. Problems with the metadata itself (signatures,
// missing or inconsistent files) go into rep and give a nil catalogue; only a failure to read
// the target is an error.
func loadForAudit(ctx context.Context, dst store.Target, start string, v sync.Verification, limit int64, rep *VerifyReport) (*sync.Catalogue, error) {
	cat, err := sync.LoadCatalogue(ctx, dst, start, v, limit, 4)
	if err == nil {
		return cat, nil
	}
	// A store's own error names the key: a missing one is a problem of the mirror, any other
	// (I/O, permission, a cancelled context) a failure to audit it.
	var se *store.Error
	switch {
	case errors.As(err, &se) && errors.Is(se, store.ErrNotExist):
		rep.addOnce(se.Key, ProblemMissing, err.Error())
	case errors.As(err, &se):
		return nil, fmt.Errorf("reading the metadata of %s: %w", store.Describe(dst), err)
	case isSignatureError(err):
		if v.Keyring != nil && pinpointSignatures(ctx, dst, signedForms(ctx, dst, start), v.Keyring, limit, rep) > 0 {
			break
		}
		rep.addOnce("", ProblemSignature, err.Error())
	default:
		rep.addOnce("", ProblemMetadata, err.Error())
	}
	return nil, nil
}

func (r *VerifyReport) has(kind ProblemKind) bool {
	for _, p := range r.Problems {
		if p.Problem == kind {
			return true
		}
	}
	return false
}

func (r *VerifyReport) addOnce(path string, kind ProblemKind, detail string) {
	for _, p := range r.Problems {
		if p.Path == path && p.Problem == kind && p.Detail == detail {
			return
		}
	}
	r.add(path, kind, detail)
}

func isSignatureError(err error) bool {
	for _, e := range []error{sign.ErrNoSignature, sign.ErrUnknownKey, sign.ErrBadSignature, sign.ErrKeyExpired, sign.ErrKeyRevoked, sign.ErrMalformed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// signedForms lists the signed metadata forms (.sjson, .json.gpg) in the directory of the
// catalogue's start path, sorted; a listing that fails gives what it listed so far.
func signedForms(ctx context.Context, dst store.Target, start string) []string {
	var keys []string
	prefix := ""
	if i := strings.LastIndex(start, "/"); i >= 0 {
		prefix = start[:i+1]
	}
	_ = dst.List(ctx, prefix, func(info store.Info) error {
		if rest := info.Key[len(prefix):]; !strings.Contains(rest, "/") && (strings.HasSuffix(rest, ".sjson") || strings.HasSuffix(rest, ".json.gpg")) {
			keys = append(keys, info.Key)
		}
		return nil
	})
	return keys
}

// pinpointSignatures checks each signed metadata form (signedForms) on its own, so the report
// names every file that fails. It returns the number of failures added.
func pinpointSignatures(ctx context.Context, dst store.Target, keys []string, kr *sign.Keyring, limit int64, rep *VerifyReport) int {
	if limit <= 0 {
		limit = sync.DefaultMetadataLimit
	}
	read := func(key string) []byte {
		data, err := store.ReadAll(ctx, dst, key, limit)
		if err != nil {
			return nil
		}
		return data
	}
	n := 0
	for _, key := range keys {
		var err error
		switch {
		case strings.HasSuffix(key, ".sjson"):
			data := read(key)
			if data == nil {
				continue
			}
			_, err = sign.VerifyClearsigned(key, data, kr)
		case strings.HasSuffix(key, ".json.gpg"):
			sig, plain := read(key), read(strings.TrimSuffix(key, ".gpg"))
			if sig == nil || plain == nil {
				continue
			}
			err = sign.VerifyDetached(strings.TrimSuffix(key, ".gpg"), plain, sig, kr)
		}
		if err != nil {
			rep.addOnce(key, ProblemSignature, err.Error())
			n++
		}
	}
	return n
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Path != ps[j].Path {
			return ps[i].Path < ps[j].Path
		}
		return ps[i].Problem < ps[j].Problem
	})
}
