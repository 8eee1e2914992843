package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
	"golang.org/x/sync/errgroup"
)

// Hub and spoke: a spoke's source is another ssmirror mirror (a hub). A verbatim hub publishes
// its upstream's catalogue byte for byte, so the catalogue lists everything upstream offers,
// not what the hub holds; a spoke whose selection is wider than the hub's would try to fetch
// files the hub never had and fail run after run. So a run reads what its source holds from
// the source's own record, the hub's state (StateKey under the source root, which a hub writes
// after every publish and which is served from wherever the hub is: S3, HTTP, a CDN), and
// leaves out of upstream every item whose content the hub does not hold with the catalogue's
// sha256. --max then picks among the versions the hub holds.
//
// An upstream that is no ssmirror mirror (images.maas.io) has no such record (404): its
// catalogue is taken as it is. A hub whose record exists but cannot be read (access denied, as
// a CDN or web server hiding dot-directories answers, or a record this version cannot parse)
// is checked file by file instead, before anything is transferred (checkSourceHolds).

// SourceHolds is what a run learned of what its source holds.
type SourceHolds struct {
	// Record is true when the source's record was read: the items below were left out of
	// upstream because the source does not hold their content.
	Record bool
	// Unreadable, when not nil, is why a record the source seems to have could not be read: the
	// files to fetch are then checked at the source before the transfer.
	Unreadable error
	// LeftOut are the selected items left out because the source does not hold them (sorted).
	LeftOut []streams.ItemKey
	// Hint is a filter that excludes what was left out, when one attribute tells them apart
	// from what the source holds (e.g. "release!~^(focal)$"); "" otherwise.
	Hint string
}

// readSourceRecord reads the content objects the source's record says it holds: found is false
// when the source has no record (it is no ssmirror mirror), and err is not nil when it has one
// that cannot be read.
func readSourceRecord(ctx context.Context, src store.Source, limit int64) (objects map[string]Object, found bool, err error) {
	data, err := store.ReadAll(ctx, src, StateKey, limit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, err
		}
		// Not "not there": access denied (a CDN or web server hiding dot-directories), a server
		// error, a record over the limit. The catalogue itself was readable, so the run goes on
		// and checks the files it fetches at the source instead.
		return nil, true, fmt.Errorf("the source's record %s cannot be read: %w", StateKey, err)
	}
	st := NewState()
	if err := json.Unmarshal(data, st); err != nil {
		return nil, true, fmt.Errorf("the source's record %s: %w", StateKey, err)
	}
	return st.Objects, true, nil
}

// keepHeld returns the items of upstream whose content objects holds with the same sha256 (an
// item without content is kept), and the selected ones it left out. With wholeVersions (curated
// mode, whose catalogue lists whole versions) a version is kept only if every one of its items
// is held.
func keepHeld(upstream []streams.Item, objects map[string]Object, filters streams.Filters, groups []streams.Filters, wholeVersions bool) (kept []streams.Item, leftOut []streams.ItemKey, hint string) {
	held := func(it *streams.Item) bool {
		if it.Path == "" {
			return true
		}
		o, ok := objects[it.Path]
		if !ok || o.Size != it.Size {
			return false
		}
		return it.SHA256 == "" || o.SHA256 == "" || strings.EqualFold(o.SHA256, it.SHA256)
	}
	drop := make([]bool, len(upstream))
	partial := map[VersionKey]bool{}
	for i := range upstream {
		if !held(&upstream[i]) {
			drop[i] = true
			it := &upstream[i]
			partial[VersionKey{it.ContentID, it.Product, it.Version}] = true
		}
	}
	if wholeVersions {
		for i := range upstream {
			it := &upstream[i]
			if partial[VersionKey{it.ContentID, it.Product, it.Version}] {
				drop[i] = true
			}
		}
	}
	var missing, present []*streams.Item
	for i := range upstream {
		it := &upstream[i]
		selected := filters.MatchAttrs(it.Attrs) && matchAny(groups, it.Attrs)
		if drop[i] {
			if selected {
				leftOut = append(leftOut, it.Key())
				missing = append(missing, it)
			}
			continue
		}
		kept = append(kept, *it)
		if selected {
			present = append(present, it)
		}
	}
	sort.Slice(leftOut, func(i, j int) bool { return leftOut[i].String() < leftOut[j].String() })
	return kept, leftOut, excludeHint(missing, present)
}

// hintKeys are the attributes a hint may use, in the order they are tried: those MAAS
// operators filter on.
var hintKeys = []string{"release", "arch", "os", "subarch", "kflavor", "label", "ftype"}

// maxHintValues bounds the values a hint lists: past that it would not help a reader.
const maxHintValues = 8

// excludeHint finds one filter that leaves out every missing item and keeps every present one:
// first "key!~^(values)$" with the missing items' values of a key that every missing item has
// and no present item shares, else "key~^(values)$" with the present items' values of a key
// every present item has and no missing item shares. "" when no attribute tells them apart.
func excludeHint(missing, present []*streams.Item) string {
	if len(missing) == 0 {
		return ""
	}
	for _, key := range hintKeys {
		if vals := telling(key, missing, present); vals != nil {
			return key + "!~^(" + strings.Join(vals, "|") + ")$"
		}
	}
	if len(present) == 0 {
		return ""
	}
	for _, key := range hintKeys {
		if vals := telling(key, present, missing); vals != nil {
			return key + "~^(" + strings.Join(vals, "|") + ")$"
		}
	}
	return ""
}

// telling returns the values (quoted for a regexp, sorted) of key among these items when every
// one of them has the key and none of those items has one of these values; nil otherwise.
func telling(key string, these, those []*streams.Item) []string {
	vals := map[string]bool{}
	for _, it := range these {
		v := it.Attrs.Value(key)
		if v == "" {
			return nil
		}
		vals[v] = true
	}
	if len(vals) > maxHintValues {
		return nil
	}
	for _, it := range those {
		if vals[it.Attrs.Value(key)] {
			return nil
		}
	}
	out := make([]string, 0, len(vals))
	for v := range vals {
		out = append(out, regexp.QuoteMeta(v))
	}
	sort.Strings(out)
	return out
}

// NotAtSourceError refuses a run whose source (a hub whose record could not be read) lacks
// files the run was about to fetch: nothing was transferred or published.
type NotAtSourceError struct {
	// Missing are the items whose content the source does not have (sorted).
	Missing []streams.ItemKey
	// Hint is a filter that would leave them out ("" when none was found).
	Hint string
	// Why is why the source's record could not be read.
	Why error
}

func (e *NotAtSourceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the source does not hold %d selected item(s) its catalogue lists (", len(e.Missing))
	for i, k := range e.Missing {
		if i == 3 {
			fmt.Fprintf(&b, ", and %d more", len(e.Missing)-3)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.String())
	}
	b.WriteString("): it is probably a mirror holding less than its catalogue lists (a verbatim hub), and ")
	if e.Why != nil {
		fmt.Fprintf(&b, "its record could not be read (%v); ", e.Why)
	}
	b.WriteString("nothing was transferred or published; narrow the selection to what the source holds")
	if e.Hint != "" {
		fmt.Fprintf(&b, ", e.g. add the filter '%s'", e.Hint)
	}
	b.WriteString(", or make the source's record (" + StateKey + ") readable")
	return b.String()
}

// checkAtSource stats, at the source, the content of every item the plan fetches, when the
// source's record could not be read; it returns a *NotAtSourceError naming the items whose
// content is not there. Other failures of the stat are left to the transfer to report.
func checkAtSource(ctx context.Context, src store.Source, plan *Plan, upstream []streams.Item, why error, concurrency int) error {
	paths := map[string]bool{}
	for _, f := range plan.Fetch {
		paths[f.Path] = true
	}
	if len(paths) == 0 {
		return nil
	}
	list := make([]string, 0, len(paths))
	for p := range paths {
		list = append(list, p)
	}
	sort.Strings(list)
	absent := make([]bool, len(list))
	var g errgroup.Group
	g.SetLimit(max(concurrency, 1))
	for i, p := range list {
		g.Go(func() error {
			if _, err := src.Stat(ctx, p); errors.Is(err, fs.ErrNotExist) {
				absent[i] = true
			}
			return nil // other failures are the transfer's to report
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	gone := map[string]bool{}
	for i, p := range list {
		if absent[i] {
			gone[p] = true
		}
	}
	if len(gone) == 0 {
		return nil
	}
	var missing, present []*streams.Item
	var keys []streams.ItemKey
	for i := range upstream {
		it := &upstream[i]
		if it.Path == "" {
			continue
		}
		if gone[it.Path] {
			missing = append(missing, it)
			keys = append(keys, it.Key())
		} else if paths[it.Path] {
			present = append(present, it)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return &NotAtSourceError{Missing: keys, Hint: excludeHint(missing, present), Why: why}
}
