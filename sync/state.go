package sync

import (
	"bytes"
	"context"
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
