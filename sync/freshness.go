package sync

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// The freshness record: a small public document each publish writes after the index (a run that
// publishes nothing writes nothing), saying what the mirror publishes and since when, for a site, a monitor or a spoke to read
// through the same URL (and the same caches) as the metadata. It lives in the mirror's control
// directory, where no upstream file may be published (CheckControlPaths, checkMetadataKeys), so
// it never clashes with upstream's paths, and it is served like everything else under the
// mirror root. In curated mode it is also written clearsigned with the operator's key
// (FreshnessSignedKey), in one object, so that a reader never sees a record and a signature of
// two different runs.
const (
	FreshnessKey       = controlDir + "freshness.json"
	FreshnessSignedKey = controlDir + "freshness.sjson"
)

// FreshnessFormat is the record's format name; a change that old readers would misread gets a
// new one.
const FreshnessFormat = "ssmirror-freshness:1"

// DefaultFreshnessMaxAge is the longest the freshness record may be cached (its Cache-Control
// max-age): short, so that it shows a monitor each run; the metadata's own max-age when shorter.
const DefaultFreshnessMaxAge = time.Minute

// FreshnessInfo is what the caller tells the run to put in the freshness record that the run
// cannot know.
type FreshnessInfo struct {
	// Upstream is where the mirror is read from, as shown (without user info).
	Upstream string
	// Generator names the program and its version ("ssmirror v1.2.3").
	Generator string
}

// Freshness is the freshness record (FreshnessKey).
type Freshness struct {
	Format    string `json:"format"`
	Generator string `json:"generator,omitempty"`
	Upstream  string `json:"upstream,omitempty"`
	// Mode is "verbatim" (upstream's metadata byte for byte) or "curated" (rewritten and signed).
	Mode string `json:"mode"`
	// SigningKey is the fingerprint of the key curated metadata is signed with; UpstreamKeys
	// the fingerprints of the keyring verbatim metadata was verified against (none: unverified).
	SigningKey   string   `json:"signing_key,omitempty"`
	UpstreamKeys []string `json:"upstream_keys,omitempty"`
	// Index is the index's path (its .json form when published) and IndexUpdated its "updated".
	Index        string              `json:"index"`
	IndexUpdated string              `json:"index_updated"`
	Products     []FreshnessProducts `json:"products"`
	// Metadata lists every metadata object the published catalogue is made of, with its size and
	// sha256: a reader compares what it is served with it.
	Metadata []FreshnessFile `json:"metadata"`
	// Published is when the metadata this record describes was published (a run that publishes
	// writes a new record; an up-to-date run writes nothing); PreviousPublished the publish
	// before it (null for the first).
	Published         time.Time  `json:"published"`
	PreviousPublished *time.Time `json:"previous_published"`
	// Files and Bytes count the distinct content files the mirror holds (none when it holds
	// metadata only).
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// FreshnessProducts is one products file of the record.
type FreshnessProducts struct {
	ContentID string `json:"content_id"`
	Path      string `json:"path"`
	Updated   string `json:"updated,omitempty"`
	// NewestVersion is the newest version the mirror holds of any product of the file
	// (versions sort as byte strings); "" when it holds none.
	NewestVersion string `json:"newest_version"`
}

// FreshnessFile is one metadata object of the record.
type FreshnessFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ParseFreshness reads a freshness record (the plain form).
func ParseFreshness(data []byte) (*Freshness, error) {
	var f Freshness
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("freshness record: %w", err)
	}
	if f.Format != FreshnessFormat {
		return nil, fmt.Errorf("freshness record: format %q, want %q", f.Format, FreshnessFormat)
	}
	return &f, nil
}

// ReadFreshness reads the freshness record a mirror last wrote; nil, nil when it has none.
func ReadFreshness(ctx context.Context, src store.Source) (*Freshness, error) {
	data, err := store.ReadAll(ctx, src, FreshnessKey, 1<<22)
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", FreshnessKey, err)
	}
	return ParseFreshness(data)
}

// freshness builds the record of this run, once its metadata is published at published (prev:
// the publish before, nil for the first).
func (r *run) freshness(published time.Time, prev *time.Time) *Freshness {
	cat, st := r.cat, r.st
	f := &Freshness{
		Format:    FreshnessFormat,
		Generator: r.opts.Freshness.Generator,
		Upstream:  r.opts.Freshness.Upstream,
		Mode:      "verbatim",
		Index:     cat.StartPath,
		Products:  []FreshnessProducts{},
		Metadata:  []FreshnessFile{},
		Published: published.UTC().Truncate(time.Second),
	}
	if prev != nil {
		p := prev.UTC()
		f.PreviousPublished = &p
	}
	if r.opts.Signer != nil {
		f.Mode = "curated"
		f.SigningKey = r.opts.Signer.Fingerprint()
	} else if kr := r.opts.Verification.Keyring; kr != nil {
		f.UpstreamKeys = kr.Fingerprints()
	}
	f.IndexUpdated = cat.Index.Updated
	if pub, ok := st.Published[cat.IndexBase+".json"]; ok {
		f.Index = cat.IndexBase + ".json"
		f.IndexUpdated = cmp.Or(pub.Updated, f.IndexUpdated)
	}
	newest := map[string]string{}
	for vk := range r.plan.Held {
		if vk.Version > newest[vk.ContentID] {
			newest[vk.ContentID] = vk.Version
		}
	}
	for _, pf := range cat.Products {
		key := pf.Base + ".json"
		pub, published := st.Published[key]
		if !published {
			if _, signed := st.Published[pf.Base+".sjson"]; !signed {
				continue // not published (curated: the mirror holds nothing of it)
			}
			key = pf.Base + ".sjson"
		}
		updated := "" // the index entry's (verbatim: the parsed document is not kept)
		if pf.Entry != nil {
			updated = pf.Entry.Updated
		}
		f.Products = append(f.Products, FreshnessProducts{
			ContentID: pf.ContentID, Path: key, Updated: cmp.Or(pub.Updated, updated), NewestVersion: newest[pf.ContentID],
		})
	}
	for key, pub := range st.Published {
		f.Metadata = append(f.Metadata, FreshnessFile{Path: key, Size: pub.Size, SHA256: pub.SHA256})
	}
	sort.Slice(f.Metadata, func(i, j int) bool { return f.Metadata[i].Path < f.Metadata[j].Path })
	if !r.opts.NoItemDownload { // a metadata-only mirror holds no content
		for path := range r.plan.Held.Paths() {
			f.Files++
			f.Bytes += r.plan.Held.size(path)
		}
	}
	return f
}

// size is the size of the held content at path (0 when none holds it).
func (h Held) size(path string) int64 {
	for _, hv := range h {
		for _, it := range hv {
			if it.Path == path {
				return it.Size
			}
		}
	}
	return 0
}

// FreshnessWritten is what the state records of the freshness record last written: its
// object (as Published records metadata) and when it was published.
type FreshnessWritten struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Tag is the store's version tag of the object as written (as Published.ETag).
	Tag      string     `json:"tag,omitempty"`
	Time     time.Time  `json:"time"`
	Previous *time.Time `json:"previous,omitempty"`
	Signed   bool       `json:"signed,omitempty"`
}

// published is the record as a Published metadata object.
func (w *FreshnessWritten) published() Published {
	return Published{Size: w.Size, SHA256: w.SHA256, ETag: w.Tag}
}

// needsFreshness reports whether the run writes a freshness record: when it published
// metadata, or when the record is missing, was replaced behind the mirror's back, or is not in
// the mode's form (curated mirrors also have the signed form). An up-to-date run writes nothing,
// as before.
func (r *run) needsFreshness() bool {
	st := r.st
	if len(r.rep.MetadataWritten) > 0 || st.Freshness == nil || !st.stillListed(FreshnessKey, st.Freshness.published()) {
		return true
	}
	curated := r.opts.Signer != nil
	_, signedListed := st.listed[FreshnessSignedKey]
	return st.Freshness.Signed != curated || (st.listed != nil && signedListed != curated)
}

// writeFreshness writes the run's freshness record after the metadata (and, curated, its
// clearsigned form), fenced like every write readers see, when the run published metadata or
// the record is not as last written (needsFreshness).
func (r *run) writeFreshness(ctx context.Context) error {
	if !r.needsFreshness() {
		return nil
	}
	published, prev := r.opts.Now(), (*time.Time)(nil)
	if w := r.st.Freshness; w != nil {
		if len(r.rep.MetadataWritten) == 0 {
			// Written again (missing, replaced, or not in the mode's form): the same publish.
			published, prev = w.Time, w.Previous
		} else {
			prev = &w.Time
		}
	}
	f := r.freshness(published, prev)
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	cc := FreshnessCacheControl(cmp.Or(r.opts.MetadataCacheControl, DefaultMetadataCacheControl))
	put := func(key string, body []byte) (store.Info, error) {
		if err := fence(ctx, r.lock, "writing "+key); err != nil {
			return store.Info{}, err
		}
		info, err := store.PutBytes(ctx, r.dst, key, body, store.PutOptions{
			SHA256: hexSHA256(body), ContentType: "application/json", CacheControl: cc,
		})
		if err != nil {
			return info, fmt.Errorf("writing the freshness record %s: %w", key, err)
		}
		return info, nil
	}
	curated := r.opts.Signer != nil
	if curated {
		var clear bytes.Buffer
		if err := r.opts.Signer.ClearSign(&clear, bytes.NewReader(data)); err != nil {
			return fmt.Errorf("signing %s: %w", FreshnessSignedKey, err)
		}
		if _, err := put(FreshnessSignedKey, clear.Bytes()); err != nil {
			return err
		}
	} else if _, listed := r.st.listed[FreshnessSignedKey]; listed || (r.st.Freshness != nil && r.st.Freshness.Signed) {
		// Curated before: a signed record of an earlier run would outlive the plain one.
		if err := fence(ctx, r.lock, "deleting "+FreshnessSignedKey); err != nil {
			return err
		}
		if err := r.dst.Delete(ctx, FreshnessSignedKey); err != nil && !errors.Is(err, store.ErrNotExist) {
			return fmt.Errorf("removing %s (the mirror is not curated any more): %w", FreshnessSignedKey, err)
		}
	}
	info, err := put(FreshnessKey, data)
	if err != nil {
		return err
	}
	r.st.Freshness = &FreshnessWritten{
		Size: int64(len(data)), SHA256: hexSHA256(data), Tag: info.ETag,
		Time: f.Published, Previous: f.PreviousPublished, Signed: curated,
	}
	r.rep.Freshness = f
	r.opts.Log.Info("published", "path", FreshnessKey)
	return nil
}

// FreshnessCacheControl is the Cache-Control of the freshness record for metadata written with
// metadataCC: the metadata's own max-age when it is shorter than DefaultFreshnessMaxAge (or it
// is not to be cached), else that.
func FreshnessCacheControl(metadataCC string) string {
	life, err := CacheLifetime(metadataCC)
	if err == nil && life == 0 {
		return "no-cache"
	}
	if err != nil || life > DefaultFreshnessMaxAge {
		life = DefaultFreshnessMaxAge
	}
	return "public, max-age=" + strconv.Itoa(int(life/time.Second))
}

// CacheLifetime is the longest a shared cache (a CDN, a proxy) may serve a response with this
// Cache-Control without asking the origin again: the larger of max-age and s-maxage, plus
// stale-while-revalidate (a cache may serve it that much longer while it refreshes it); zero for
// no-store, no-cache and private. A header that sets no lifetime is an error: caches would pick
// one themselves (heuristic freshness), which nothing can bound.
func CacheLifetime(cc string) (time.Duration, error) {
	var maxAge, swr time.Duration
	found := false
	for _, d := range strings.Split(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.Trim(strings.TrimSpace(val), `"`)
		switch name {
		case "no-store", "no-cache", "private":
			return 0, nil
		case "max-age", "s-maxage", "stale-while-revalidate":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("Cache-Control %q: %s=%q is not a number of seconds", cc, name, val)
			}
			if name == "stale-while-revalidate" {
				swr = time.Duration(n) * time.Second
				continue
			}
			found = true
			maxAge = max(maxAge, time.Duration(n)*time.Second)
		}
	}
	if !found {
		return 0, fmt.Errorf("Cache-Control %q sets no max-age: caches would choose how long to keep the metadata", cc)
	}
	return maxAge + swr, nil
}
