package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/retry"
	"github.com/ssmirror/ssmirror/streams"
	"golang.org/x/sync/errgroup"
)

// DefaultStartPath is where a reader starts when the source names no metadata file.
const DefaultStartPath = "streams/v1/index.sjson"

// UnsignedStartPath is where a reader starts when the source names no metadata file and has no
// DefaultStartPath (LXD and Incus image servers publish no signed index).
const UnsignedStartPath = "streams/v1/index.json"

// MetaFile is one metadata object exactly as upstream has it.
type MetaFile struct {
	Key  string
	Data []byte
}

// ProductsFile is one products document of the catalogue, with every form upstream offers.
type ProductsFile struct {
	ContentID string
	Entry     *streams.IndexEntry
	Doc       *streams.Products
	// Base is the key without its .json/.sjson ending ("streams/v1/com.ubuntu.maas:stable:v3:download").
	Base  string
	Forms []MetaFile
	Items []streams.Item
}

// Catalogue is an upstream stream's metadata, verified and parsed.
type Catalogue struct {
	StartPath  string
	Index      *streams.Index
	IndexBase  string
	IndexForms []MetaFile
	Products   []*ProductsFile // sorted by content id
	items      []streams.Item  // every item; each ProductsFile.Items is a slice of it
	// Source is what the run learned of what the source holds (readUpstream; hub and spoke).
	Source SourceHolds
}

// Items gives every item of every products file, in the order of Products. The slice is the
// catalogue's own (a catalogue of a million items is hundreds of MB): do not modify it.
func (c *Catalogue) Items() []streams.Item {
	return c.items
}

// shareItems moves the items of every products file into one slice, of which each file's Items
// becomes a slice, so that the catalogue holds each item once.
func (c *Catalogue) shareItems() {
	n := 0
	for _, pf := range c.Products {
		n += len(pf.Items)
	}
	c.items = make([]streams.Item, 0, n)
	for _, pf := range c.Products {
		start := len(c.items)
		c.items = append(c.items, pf.Items...)
		pf.Items = c.items[start:len(c.items):len(c.items)]
	}
}

// keepForMode drops what the publishing mode will not use, before the plan is made: verbatim
// publishing writes the forms upstream offers byte for byte and never looks at the parsed
// documents (which hold a copy of each file's bytes and a map per item); curated publishing
// rewrites the parsed documents and never writes upstream's forms.
func (c *Catalogue) keepForMode(curated bool) {
	for _, pf := range c.Products {
		if curated {
			pf.Forms = nil
		} else {
			pf.Doc = nil
		}
	}
	if curated {
		c.IndexForms = nil
	}
}

// metadataForms are the endings a metadata document may be published under.
var metadataForms = []string{".sjson", ".json", ".json.gpg"}

// splitForm splits a metadata key into its base and ending (".sjson" or ".json"); a key with
// another ending is its own base with ending "".
func splitForm(key string) (base, ending string) {
	for _, e := range []string{".sjson", ".json"} {
		if strings.HasSuffix(key, e) {
			return strings.TrimSuffix(key, e), e
		}
	}
	return key, ""
}

// ErrNoKeyring is wrapped by LoadCatalogue's error for a signed start path read with neither a
// keyring (Verification.Keyring) nor Verification.NoVerify.
var ErrNoKeyring = errors.New("signed, but there is no keyring to verify it with")

// LoadCatalogue reads the index at startPath and every products file it lists, in every form
// upstream offers, checking signatures as v says. It changes nothing anywhere.
//
// Rules: a signed start path (.sjson) needs a keyring or NoVerify. With a keyring every metadata
// document must be signed (clearsigned .sjson, or .json with a detached .json.gpg) and every form
// present must verify; with NoVerify signatures are stripped unchecked; with neither, an unsigned
// start path (.json) is read as it is.
func LoadCatalogue(ctx context.Context, src store.Source, startPath string, v Verification, limit int64, concurrency int) (*Catalogue, error) {
	defaulted := startPath == ""
	if defaulted {
		startPath = DefaultStartPath
	}
	if err := store.ValidKey(startPath); err != nil {
		return nil, fmt.Errorf("start path: %w", err)
	}
	if limit <= 0 {
		limit = DefaultMetadataLimit
	}
	if defaulted && v.Keyring == nil && !v.NoVerify {
		// No keyring: a source that has no signed index (an LXD or Incus image server) starts
		// from its unsigned one; one that has a signed index needs a keyring.
		if _, err := src.Stat(ctx, DefaultStartPath); errors.Is(err, store.ErrNotExist) {
			if _, err := src.Stat(ctx, UnsignedStartPath); err == nil {
				startPath = UnsignedStartPath
			}
		}
	}
	base, ending := splitForm(startPath)
	if ending == ".sjson" && v.Keyring == nil && !v.NoVerify {
		return nil, fmt.Errorf("%s: %w", startPath, ErrNoKeyring)
	}
	body, forms, err := readDocument(ctx, src, startPath, v, limit)
	if err != nil && defaulted && errors.Is(err, store.ErrNotExist) {
		// No signed index at the source's root: start from the unsigned one. With a keyring it
		// must still carry a good detached signature (readDocument's rules), so nothing is
		// downgraded.
		first := err
		startPath = UnsignedStartPath
		base, _ = splitForm(startPath)
		body, forms, err = readDocument(ctx, src, startPath, v, limit)
		if errors.Is(err, store.ErrNotExist) {
			return nil, fmt.Errorf("no catalogue: neither %s nor %s: %w", DefaultStartPath, UnsignedStartPath, first)
		}
	}
	if err != nil {
		return nil, err
	}
	ix, err := streams.ParseIndex(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", startPath, err)
	}
	cat := &Catalogue{StartPath: startPath, Index: ix, IndexBase: base, IndexForms: forms}
	ids, err := indexEntries(startPath, base, ix)
	if err != nil {
		return nil, err
	}

	if concurrency <= 0 {
		concurrency = 4
	}
	cat.Products = make([]*ProductsFile, len(ids))
	errs := make([]error, len(ids))
	// The catalogue as a whole is capped too: an index may name any number of products files,
	// each under the limit. Memory then stays within the cap plus what the files being read
	// hold.
	total, capAll := formsSize(forms), catalogueLimit(limit)
	var totalMu gosync.Mutex
	over := false
	var g errgroup.Group // no cancellation: every products file's failure is reported
	g.SetLimit(concurrency)
	for i, id := range ids {
		g.Go(func() error {
			totalMu.Lock()
			stop := over
			totalMu.Unlock()
			if stop {
				return nil // reported once, by the file that went over
			}
			pf, err := loadProducts(ctx, src, id, ix.Index[id], v, limit)
			if err == nil {
				totalMu.Lock()
				total += formsSize(pf.Forms)
				if total > capAll && !over {
					over = true
					err = fmt.Errorf("%s: %w: the catalogue's metadata comes to more than %d bytes in all (4 times the limit on one file) once %s is read (the index names %d products files)",
						startPath, store.ErrOverLimit, capAll, ix.Index[id].Path, len(ids))
				}
				totalMu.Unlock()
			}
			cat.Products[i], errs[i] = pf, err
			return nil
		})
	}
	g.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cat.shareItems()
	if err := streams.CheckConsistent(cat.items); err != nil {
		return nil, err
	}
	return cat, nil
}

// indexEntries checks the entries of the index at startPath (whose base is base) and returns
// their ids, sorted: each a products:1.0 entry naming a valid key, not the index itself, and no
// two naming the same products file.
func indexEntries(startPath, base string, ix *streams.Index) ([]string, error) {
	ids := make([]string, 0, len(ix.Index))
	byBase := make(map[string]string, len(ix.Index)) // products base → the entry naming it
	for id, e := range ix.Index {
		if e.Format != "" && e.Format != "products:1.0" {
			return nil, fmt.Errorf("%s: entry %s has format %q; only products:1.0 entries are mirrored", startPath, id, e.Format)
		}
		if err := store.ValidKey(e.Path); err != nil {
			return nil, fmt.Errorf("%s: entry %s: %w", startPath, id, err)
		}
		pb, _ := splitForm(e.Path)
		if pb == base {
			return nil, fmt.Errorf("%s: entry %s points at the index itself", startPath, id)
		}
		// Each entry reads and parses its file whole, and publishes it: one file named by many
		// entries would multiply the catalogue's memory and be published once per entry.
		if other, dup := byBase[pb]; dup {
			a, b := min(id, other), max(id, other)
			return nil, fmt.Errorf("%s: entries %s and %s both name the products file %s", startPath, a, b, e.Path)
		}
		byBase[pb] = id
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

// catalogueLimit is the most bytes of metadata a catalogue reads in all: four times the limit
// on one file.
func catalogueLimit(limit int64) int64 { return 4 * limit }

// formsSize is the bytes of the forms read of one document.
func formsSize(forms []MetaFile) int64 {
	var n int64
	for _, f := range forms {
		n += int64(len(f.Data))
	}
	return n
}

func loadProducts(ctx context.Context, src store.Source, id string, e *streams.IndexEntry, v Verification, limit int64) (*ProductsFile, error) {
	body, forms, err := readDocument(ctx, src, e.Path, v, limit)
	if err != nil {
		return nil, err
	}
	doc, err := streams.ParseProducts(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	if cid := doc.ContentID(); cid != "" && cid != id {
		return nil, fmt.Errorf("%s: content_id %q, but the index lists it as %q", e.Path, cid, id)
	}
	items, err := doc.Items()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	for i := range items {
		items[i].ContentID = id
	}
	base, _ := splitForm(e.Path)
	return &ProductsFile{ContentID: id, Entry: e, Doc: doc, Base: base, Forms: forms, Items: items}, nil
}

// readDocument reads every form of the metadata document key names and returns the verified
// JSON body and the forms found, byte for byte.
func readDocument(ctx context.Context, src store.Source, key string, v Verification, limit int64) ([]byte, []MetaFile, error) {
	base, ending := splitForm(key)
	if ending == "" {
		data, err := readMetadata(ctx, src, key, limit)
		if err != nil {
			return nil, nil, err
		}
		if v.Keyring != nil {
			return nil, nil, fmt.Errorf("%s: %w: a keyring was given, and this file has no signed form", key, sign.ErrNoSignature)
		}
		return data, []MetaFile{{key, data}}, nil
	}
	found := map[string][]byte{}
	for _, e := range metadataForms {
		k := base + e
		data, err := readMetadata(ctx, src, k, limit)
		if errors.Is(err, store.ErrNotExist) {
			if k == key {
				return nil, nil, err
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		found[e] = data
	}
	var forms []MetaFile
	for _, e := range []string{".json", ".json.gpg", ".sjson"} {
		if data, ok := found[e]; ok {
			forms = append(forms, MetaFile{base + e, data})
		}
	}

	signed, hasSigned := found[".sjson"]
	plain, hasPlain := found[".json"]

	var body []byte
	switch {
	case v.Keyring != nil:
		b, err := verifiedBody(key, base, found, v.Keyring)
		if err != nil {
			return nil, nil, err
		}
		body = b
	case ending == ".sjson":
		b, err := sign.StripClearsigned(key, signed)
		if err != nil {
			return nil, nil, err
		}
		body = b
	default:
		body = plain
	}
	// Every form published must say the same thing as the verified body.
	if hasPlain && !bytes.Equal(plain, body) {
		if same, err := sameJSON(plain, body); err != nil || !same {
			return nil, nil, fmt.Errorf("%s differs from its signed form %s: refusing to publish it", base+".json", key)
		}
	}
	if hasSigned && v.Keyring == nil && ending != ".sjson" {
		// Read unsigned, published verbatim: make sure the signed form at least carries the same body.
		if b, err := sign.StripClearsigned(base+".sjson", signed); err == nil {
			if same, err := sameJSON(b, body); err != nil || !same {
				return nil, nil, fmt.Errorf("%s differs from %s: refusing to publish it", base+".sjson", key)
			}
		}
	}
	return body, forms, nil
}

// verifiedBody is the body of the document key names (whose base is base) from its forms found
// (by ending), every signed form present verified with keyring: the clearsigned form's body, or
// else the plain form's, which then needs a good detached signature.
func verifiedBody(key, base string, found map[string][]byte, keyring *sign.Keyring) ([]byte, error) {
	signed, hasSigned := found[".sjson"]
	plain, hasPlain := found[".json"]
	detached, hasDetached := found[".json.gpg"]
	var body []byte
	if hasSigned {
		b, err := sign.VerifyClearsigned(base+".sjson", signed, keyring)
		if err != nil {
			return nil, err
		}
		body = b
	}
	if hasPlain {
		if hasDetached {
			if err := sign.VerifyDetached(base+".json", plain, detached, keyring); err != nil {
				return nil, err
			}
			if body == nil {
				body = plain
			}
		} else if body == nil {
			return nil, fmt.Errorf("%s: %w: a keyring was given and neither %s nor %s exists", base+".json", sign.ErrNoSignature, base+".sjson", base+".json.gpg")
		}
	}
	if body == nil {
		return nil, fmt.Errorf("%s: %w: a keyring was given and no signed form exists", key, sign.ErrNoSignature)
	}
	return body, nil
}

// readMetadata reads one metadata file, trying the whole read again with backoff when the
// failure may be transient (a 5xx answer, a dropped connection), as content fetches do
// (sourcePolicy).
func readMetadata(ctx context.Context, src store.Source, key string, limit int64) ([]byte, error) {
	var data []byte
	err := retry.Do(ctx, sourcePolicy(nil), func(ctx context.Context) error {
		var err error
		data, err = store.ReadAll(ctx, src, key, limit)
		return err
	})
	if re, ok := err.(*retry.Error); ok {
		// The error says nothing of the attempts, as before the policy was shared.
		if re.Interrupted != nil {
			return nil, re.Interrupted
		}
		return data, re.Err
	}
	return data, err
}

// sameJSON compares two JSON documents by value, ignoring layout. Paths differ between the .json
// and .sjson forms of an index (each names its own kind), so an index compares equal when it only
// differs in those endings.
func sameJSON(a, b []byte) (bool, error) {
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		return false, err
	}
	return reflect.DeepEqual(normaliseIndexPaths(va), normaliseIndexPaths(vb)), nil
}

func normaliseIndexPaths(v any) any {
	m, ok := v.(map[string]any)
	if !ok || m["format"] != "index:1.0" {
		return v
	}
	if ix, ok := m["index"].(map[string]any); ok {
		for _, e := range ix {
			if em, ok := e.(map[string]any); ok {
				if p, ok := em["path"].(string); ok {
					b, _ := splitForm(p)
					em["path"] = b
				}
			}
		}
	}
	return m
}

// sourcePolicy is how reads from the source are tried again (whole opens, range opens, metadata
// files): maxOpenAttempts times in all, fetchBackoff apart, unless the failure is permanent:
// retry.Permanent's (a missing object, a refusal, a cancelled run, a certificate that does not
// verify, …) or a file that ran out of time (ErrTooSlow). (The HTTP store resumes interrupted
// bodies by itself, but answers 5xx or connection failures on the first request as errors.)
func sourcePolicy(notify func(attempt int, err error)) retry.Policy {
	return retry.Policy{
		Attempts:  maxOpenAttempts,
		Backoff:   fetchBackoff,
		Permanent: func(err error) bool { return retry.Permanent(err) || errors.Is(err, ErrTooSlow) },
		Notify:    notify,
	}
}

// Bounds on fetching one file: attempts to open it or one of its ranges (the source answering
// 5xx or not at all; counted per open), and complete downloads whose checksum is wrong.
const (
	maxOpenAttempts     = 5
	maxChecksumAttempts = 3
)

// fetchBackoff is the pause before attempt+1 of a fetch, about 0.5s, 1s, 2s, … (at most 8s),
// jittered by ±25% (a variable so that fuzz targets, which run thousands of failing transfers,
// need not wait).
var fetchBackoff = retry.Exponential(500*time.Millisecond, 8*time.Second)
