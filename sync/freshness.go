package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
