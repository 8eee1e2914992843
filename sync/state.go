package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// StateKey is where the mirror keeps its own record, relative to the target root.
const StateKey = ".ssmirror/state.json"

// stateVersion is bumped when the state document changes incompatibly.
const stateVersion = 1

// VersionKey names one version of one product in one products file.
type VersionKey struct {
	ContentID string `json:"content_id"`
	Product   string `json:"product"`
	Version   string `json:"version"`
}

func (k VersionKey) String() string { return k.ContentID + " " + k.Product + " " + k.Version }

// HeldItem is one item the mirror holds: where its content is (Path "" for an item without
// content) and what it must be.
type HeldItem struct {
	Path   string `json:"path,omitempty"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// HeldVersion maps item names to what the mirror holds for them.
type HeldVersion map[string]HeldItem

// Held is the set of versions (and their items) the mirror holds: what its published metadata
// promises.
type Held map[VersionKey]HeldVersion

// Object is a content object the mirror wrote (or adopted after checking it) and verified.
type Object struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// ETag is the store's version tag of the object as written or adopted (store.Info.ETag): a
	// listing that shows another one means the object was replaced behind the mirror's back.
	// "" in states written before ETags were recorded, and for backends that give none.
	ETag string `json:"etag,omitempty"`
}

// Published records a metadata object as last written, so an unchanged one is not rewritten.
type Published struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Updated is the "updated" stamp a curated document was written with (curated .json forms
	// only), so that a run whose curated content is unchanged writes the same bytes again.
	Updated string `json:"updated,omitempty"`
	// ETag is the store's version tag of the object as written ("" as for Object.ETag).
	ETag string `json:"etag,omitempty"`
}

// State is the mirror's own record, kept at StateKey in the target.
type State struct {
	// Objects are the content objects the mirror wrote and verified, by key.
	Objects map[string]Object
	// Held is what the published metadata promises.
	Held Held
	// Unreferenced maps the key of an object in Objects that nothing held references to the
	// time it became unreferenced; it is deleted once that is older than the grace period.
	Unreferenced map[string]time.Time
	// Published are the metadata objects as last written.
	Published map[string]Published
	// Mode is how the target is published (nil in a state written before modes were recorded:
	// RecordedMode infers it).
	Mode *Mode
	// Kept maps the key of an object a run fetched for a publish that did not happen (it failed
	// or was interrupted) to when that run saved it: kept for the next run, which publishes it
	// without fetching it again. It is unreferenced meanwhile (Unreferenced), so that a selection
	// that no longer wants it lets it go after the grace period; the next run that records a
	// publish clears the list.
	Kept map[string]time.Time
	// Freshness is the freshness record (FreshnessKey) as last written (nil: none yet).
	Freshness *FreshnessWritten

	// listed describes every key the target listed at the start of the run (not saved).
	listed map[string]store.Info
	// saved is the state as last read or written, so an unchanged state is not rewritten.
	saved []byte
	// stamps are the "updated" stamps of curated documents about to be written, by key (not saved).
	stamps map[string]string
	// tag is the version of StateKey this state was read as or last written as ("": there was
	// none), so that it is saved only over that version (store.Swapper).
	tag string
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		Objects:      map[string]Object{},
		Held:         Held{},
		Unreferenced: map[string]time.Time{},
		Published:    map[string]Published{},
	}
}

type heldVersionJSON struct {
	VersionKey
	Items HeldVersion `json:"items"`
}

type stateJSON struct {
	Version      int                  `json:"version"`
	Objects      map[string]Object    `json:"objects"`
	Held         []heldVersionJSON    `json:"held"`
	Unreferenced map[string]time.Time `json:"unreferenced"`
	Published    map[string]Published `json:"published"`
	Mode         *Mode                `json:"mode,omitempty"`
	Kept         map[string]time.Time `json:"kept,omitempty"`
	Freshness    *FreshnessWritten    `json:"freshness,omitempty"`
}

// MarshalJSON writes the state with held versions as a sorted list.
func (s *State) MarshalJSON() ([]byte, error) {
	out := stateJSON{
		Version:      stateVersion,
		Objects:      s.Objects,
		Unreferenced: s.Unreferenced,
		Published:    s.Published,
		Mode:         s.Mode,
		Kept:         s.Kept,
		Freshness:    s.Freshness,
	}
	for _, k := range s.Held.Keys() {
		out.Held = append(out.Held, heldVersionJSON{VersionKey: k, Items: s.Held[k]})
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads a state written by MarshalJSON.
func (s *State) UnmarshalJSON(data []byte) error {
	var in stateJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	if in.Version != stateVersion {
		return fmt.Errorf("state version %d, this ssmirror understands %d", in.Version, stateVersion)
	}
	*s = *NewState()
	for k, v := range in.Objects {
		s.Objects[k] = v
	}
	for k, v := range in.Unreferenced {
		s.Unreferenced[k] = v
	}
	for k, v := range in.Published {
		s.Published[k] = v
	}
	s.Mode, s.Kept = in.Mode, in.Kept
	s.Freshness = in.Freshness
	for _, hv := range in.Held {
		if hv.Items == nil {
			hv.Items = HeldVersion{}
		}
		s.Held[hv.VersionKey] = hv.Items
	}
	return nil
}

// Keys gives the held versions in a stable order.
func (h Held) Keys() []VersionKey {
	keys := make([]VersionKey, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	return keys
}

func (k VersionKey) less(o VersionKey) bool {
	if k.ContentID != o.ContentID {
		return k.ContentID < o.ContentID
	}
	if k.Product != o.Product {
		return k.Product < o.Product
	}
	return k.Version < o.Version
}

// Paths counts, for every content path, how many held items reference it.
func (h Held) Paths() map[string]int {
	refs := map[string]int{}
	for _, hv := range h {
		for _, it := range hv {
			if it.Path != "" {
				refs[it.Path]++
			}
		}
	}
	return refs
}

// Items counts the held items.
func (h Held) Items() int {
	n := 0
	for _, hv := range h {
		n += len(hv)
	}
	return n
}

// LoadState reads the state from the target; a target without one gives an empty state. The
// version read is remembered: SaveState writes only over it.
func LoadState(ctx context.Context, dst store.Target) (*State, error) {
	data, tag, err := dst.ReadTagged(ctx, StateKey, 1<<30)
	if errors.Is(err, store.ErrNotExist) {
		return NewState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the mirror state: %w", err)
	}
	st := NewState()
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("%s in %s: %w", StateKey, store.Describe(dst), err)
	}
	st.saved, st.tag = data, tag
	return st, nil
}

// ErrStateChanged is the error SaveState fails with when the state in the target is no longer
// the version this state was read as: another run wrote it, and this one's record is stale.
var ErrStateChanged = errors.New("the mirror state was changed by another run since this run read it")

// SaveState writes the state to the target atomically, unless it is unchanged. It writes only
// over the version it was read as (store.Swapper) (or only if there is none, for a state that
// did not exist), failing with ErrStateChanged and writing nothing otherwise. A refused write
// that finds exactly its own bytes in place (its first attempt landed, its answer was lost, and
// the resend was refused) succeeds.
func SaveState(ctx context.Context, dst store.Target, st *State) error {
	return saveState(ctx, dst, st, nil)
}

// saveState is SaveState calling fence (when not nil) right before it writes.
func saveState(ctx context.Context, dst store.Target, st *State, fence func(context.Context) error) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if bytes.Equal(data, st.saved) {
		return nil
	}
	if fence != nil {
		if err := fence(ctx); err != nil {
			return fmt.Errorf("not writing the mirror state %s: %w", StateKey, err)
		}
	}
	tag, err := dst.Swap(ctx, StateKey, data, st.tag, statePut)
	if errors.Is(err, store.ErrPrecondition) {
		// The write may have landed with its answer lost, and the client's resend then met it:
		// the state there is this run's if it is exactly the bytes this run wrote.
		if cur, curTag, rerr := dst.ReadTagged(ctx, StateKey, 1<<30); rerr == nil && bytes.Equal(cur, data) {
			st.saved, st.tag = data, curTag
			return nil
		}
		return fmt.Errorf("not writing %s in %s: %w (%w)", StateKey, store.Describe(dst), ErrStateChanged, err)
	}
	if err != nil {
		return fmt.Errorf("writing the mirror state: %w", err)
	}
	st.saved, st.tag = data, tag
	return nil
}

var statePut = store.PutOptions{ContentType: "application/json", CacheControl: "no-store"}

// listTarget lists every object of the target, by key.
func listTarget(ctx context.Context, dst store.Target) (map[string]store.Info, error) {
	listed := map[string]store.Info{}
	err := dst.List(ctx, "", func(info store.Info) error {
		listed[info.Key] = info
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", store.Describe(dst), err)
	}
	return listed, nil
}

// noteListing keeps the target's listing in st.listed, for the plan and the metadata checks.
// Metadata recorded without an ETag (by an older version, or from a write that returned none)
// takes the listed one when the size matches, as content does (presenceOf): the trust the
// record had, without a rewrite at every run.
func (st *State) noteListing(listed map[string]store.Info) {
	st.listed = listed
	for key, pub := range st.Published {
		if info, ok := st.listed[key]; ok && pub.ETag == "" && info.Size == pub.Size {
			pub.ETag = info.ETag
			st.Published[key] = pub
		}
	}
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

// isPublished reports whether key is in the target with exactly these bytes, as recorded when it
// was written and confirmed by the listing.
func (st *State) isPublished(key string, data []byte) bool {
	old, ok := st.Published[key]
	if !ok || old.Size != int64(len(data)) || !st.stillListed(key, old) {
		return false
	}
	return old.SHA256 == hexSHA256(data)
}

// hexSHA256 is the lowercase hex sha256 of data.
func hexSHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// isPublishedGroup reports whether every key is in the target as recorded.
func (st *State) isPublishedGroup(keys ...string) bool {
	for _, key := range keys {
		old, ok := st.Published[key]
		if !ok || !st.stillListed(key, old) {
			return false
		}
	}
	return true
}

// stillListed reports whether the target's listing (when it was listed) shows the metadata
// object as it was written: there, with the recorded size and ETag (a record without one took
// the listed ETag in noteListing). An object deleted or replaced behind the mirror's back is
// thus rewritten.
func (st *State) stillListed(key string, old Published) bool {
	if st.listed == nil {
		return true
	}
	info, listed := st.listed[key]
	return listed && info.Size == old.Size && SameVersion(old.ETag, info.ETag)
}

// The publishing modes, as recorded.
const (
	ModeVerbatim = "verbatim"
	ModeCurated  = "curated"
)

// Mode is how a target is published: verbatim, or curated and signed with one key.
type Mode struct {
	Publish string `json:"publish"` // ModeVerbatim or ModeCurated
	// SigningKey is the fingerprint of the key a curated mirror is signed with ("" when the
	// mode was inferred from a state written before modes were recorded).
	SigningKey string `json:"signing_key,omitempty"`
}

func (m Mode) String() string {
	if m.Publish == ModeCurated && m.SigningKey != "" {
		return "curated, signed with key " + m.SigningKey
	}
	return m.Publish
}

// Directories only the mirror writes into.
const (
	controlDir  = ".ssmirror/"
	metadataDir = "streams/v1/"
)

// SameVersion reports whether an object listed with ETag listed is still the one a record
// with ETag recorded was made for: the same tag, or no tag to tell them apart (a record from
// before ETags were kept, a backend that gives none). This is the one rule by which a record is
// trusted over what the target holds, for content, metadata and verify alike
// (sync/audit uses it on the State it reads).
func SameVersion(recorded, listed string) bool {
	return recorded == "" || listed == "" || recorded == listed
}
