package sync

import (
	"cmp"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
)

// PlanInput is everything the plan is decided from. No I/O happens in planning.
type PlanInput struct {
	// Upstream are all the items of every products file upstream offers.
	Upstream []streams.Item
	// Filters select items (ANDed); empty selects everything.
	Filters streams.Filters
	// FilterGroups, when not empty, further select items matching any one group (an OR of
	// AND-groups): a whole MAAS selection set (images and bootloaders) in one run.
	FilterGroups []streams.Filters
	// Max keeps at most this many versions per selected product (<= 0: no limit).
	Max int
	// Keep keeps held versions that vanished upstream, within Max.
	Keep bool
	// Prune drops what the current selection does not cover (otherwise runs with different
	// filters accumulate, as the MAAS recipe needs).
	Prune bool
	// Held is what the mirror holds now.
	Held Held
	// Listed is the target's listing, by key. When it is not nil the plan joins it with Objects
	// (reconcile) to know what is present, verified and owned, and Present must be nil.
	Listed map[string]store.Info
	// Objects are the content objects the mirror recorded as its own (State.Objects), by key;
	// used with Listed. Not changed: the plan gives the reconciled record in Plan.Objects.
	Objects map[string]Object
	// Present are the content objects the target holds, joined with the mirror's record of them,
	// by key, for a caller that did that itself (Listed nil). A path missing here is fetched.
	Present map[string]Presence
	// Unreferenced are the recorded times at which owned objects became unreferenced
	// (State.Unreferenced); Now is the run's time and Grace how long an unreferenced object is
	// kept (0: released by the run that stops referencing it; negative: never released).
	Unreferenced map[string]time.Time
	Now          time.Time
	Grace        time.Duration
	// MetadataOnly means the run fetches nothing (Options.NoItemDownload): it keeps recording
	// the Held it had, so releases are decided against that, not against Plan.Held.
	MetadataOnly bool
	// VerifyExisting re-reads present objects instead of trusting recorded hashes.
	VerifyExisting bool
	// WholeVersions holds every item of a version the selection reaches, not only the items
	// the filters match (curated mode: its catalogue lists what the mirror holds, and a client
	// such as MAAS rejects a products file whose version lacks some of its items).
	WholeVersions bool
}

// Presence is what is known of an object in the target.
type Presence struct {
	Size int64
	// SHA256 is the verified hash ("" when unknown: an object the mirror did not record, or one
	// that changed since it recorded it).
	SHA256 string
	// Owned means the mirror wrote (or adopted) the object, so it may delete it once nothing
	// references it. Objects it did not write are never released.
	Owned bool
}

// reconcile joins the target's listing (by key) with the mirror's record of the content objects
// it wrote, using presenceOf for each listed object: it gives the Presence of every listed
// content object (the mirror's own files under .ssmirror/ and streams/v1/, where CheckControlPaths
// refuses content, are not content; anything else, streams/v2/x too, may be) and updates objects in place: a record that still holds is kept (with the listed ETag
// adopted when it had none), one that does not (the object is missing, or was replaced) is
// removed and its key returned, sorted, in drifted.
func reconcile(listed map[string]store.Info, objects map[string]Object) (present map[string]Presence, drifted []string) {
	present = make(map[string]Presence, len(listed))
	for key, info := range listed {
		if strings.HasPrefix(key, controlDir) || strings.HasPrefix(key, metadataDir) {
			continue
		}
		rec, recorded := objects[key]
		p, kept, holds := presenceOf(info, rec, recorded)
		present[key] = p
		if holds {
			objects[key] = kept
		}
	}
	for key := range objects {
		if p, ok := present[key]; !ok || !p.Owned {
			delete(objects, key)
			drifted = append(drifted, key)
		}
	}
	sort.Strings(drifted)
	return present, drifted
}

// presenceOf joins one object of the target's listing with the mirror's record of it (recorded:
// there is one) and says whether the record still holds. It holds only while the listing shows
// the very object the mirror wrote: the same size, the same ETag, and no other sha256 recorded
// by the store. Then the object is present, verified (the recorded sha256) and owned, and kept
// is the record to keep.
//
// A record without an ETag (written by a version that did not record them) is trusted on its
// size, as those versions did, and takes the listed ETag from now on: checking it instead would
// mean reading the whole mirror once. A listing without ETags (a backend that gives none) is
// compared on size alone.
//
// When the record does not hold (the object was replaced behind the mirror's back) the object
// is present but neither verified nor owned, exactly like an object the mirror never wrote: the
// plan fetches it again when its size is wrong, and otherwise reads and hashes it (Fetch.Check),
// adopting it only if it is still the catalogue's content. A recorded object missing from the
// listing has no Presence at all, so it is fetched.
func presenceOf(listed store.Info, rec Object, recorded bool) (p Presence, kept Object, holds bool) {
	p = Presence{Size: listed.Size, SHA256: listed.SHA256}
	if !recorded || rec.Size != listed.Size {
		return p, Object{}, false
	}
	if !SameVersion(rec.ETag, listed.ETag) {
		return p, Object{}, false
	}
	if listed.SHA256 != "" && rec.SHA256 != "" && !strings.EqualFold(listed.SHA256, rec.SHA256) {
		return p, Object{}, false
	}
	if rec.ETag == "" {
		rec.ETag = listed.ETag
	}
	return Presence{Size: rec.Size, SHA256: rec.SHA256, Owned: true}, rec, true
}

// ItemChange is one item added to or removed from what the mirror holds.
type ItemChange struct {
	VersionKey
	Item string
	Path string
	Size int64
}

// Fetch is one distinct content path to bring into the target.
type Fetch struct {
	Path   string
	Size   int64
	SHA256 string
	SHA512 string
	MD5    string
	// Check means an object of the right size is there but its hash is not known to match:
	// read and hash it, and fetch only if it differs.
	Check bool
}

// Plan is what a run will do.
type Plan struct {
	// Held is what the mirror will hold (and its metadata promise) after the run.
	Held Held
	// Added and Removed are the item-level changes against the current Held.
	Added, Removed []ItemChange
	// Kept counts items held before and after.
	Kept int
	// Fetch lists each distinct path to bring in once, sorted by path.
	Fetch []Fetch
	// Objects is the mirror's record of its content objects joined with the listing (with
	// PlanInput.Listed; otherwise nil): records the listing no longer bears out are gone.
	Objects map[string]Object
	// Drifted lists, sorted, the recorded objects the listing showed missing or replaced (with
	// PlanInput.Listed): the mirror neither trusts nor deletes them any more.
	Drifted []string
	// Adopt are held content objects the target holds with the catalogue's size and a sha256 the
	// store itself recorded for them (a directory's xattr), which the mirror did not record: a
	// run killed before it saved its state wrote them. They are recorded as the mirror's own
	// without being read (never with VerifyExisting), so they are collected once unreferenced.
	Adopt map[string]Object
	// Release is the plan's decision about what the mirror owns and no longer references.
	Release
	// Widened lists the items held only because WholeVersions keeps their version whole: the
	// filters did not match them (sorted by version and item).
	Widened []ItemChange
	// Rewrites lists, sorted by path, the paths upstream rewrote in place: the metadata the
	// mirror published (PlanInput.Held) names the path with the content the target holds as
	// the mirror's own, and upstream now lists other content (size or sha256) there. A run
	// refuses such a plan (RewriteError): fetching it would overwrite bytes published
	// metadata names before the new metadata is published.
	Rewrites []Rewrite
}

// Rewrite is one path upstream rewrote in place: what the mirror published there and holds, and
// what upstream now lists.
type Rewrite struct {
	Path              string
	Size, NewSize     int64
	SHA256, NewSHA256 string
}

// Release says which owned objects nothing held references, and which of them go now.
type Release struct {
	// Unreferenced lists the owned objects the Held to be recorded does not reference, sorted.
	Unreferenced []string
	// Due lists, sorted, those unreferenced for at least the grace period by PlanInput.Now (or
	// just now, with a zero grace): the run deletes them once it has published and recorded.
	Due []string
	// Pending lists, sorted, the others: kept, waiting for the grace period to pass.
	Pending []string
	// Since is when each unreferenced object became unreferenced, as recorded; those it does
	// not hold became unreferenced with this run, and are stamped when it records its state.
	Since map[string]time.Time
}

// planRelease decides the release of the owned objects (by key) that held does not reference:
// an object is due once it has been unreferenced for grace by now (one that becomes
// unreferenced now is due at once only with a zero grace); with a negative grace none is due.
func planRelease(held Held, owned map[string]bool, since map[string]time.Time, now time.Time, grace time.Duration) Release {
	refs := held.Paths()
	r := Release{Since: map[string]time.Time{}}
	for key := range owned {
		if refs[key] > 0 {
			continue
		}
		r.Unreferenced = append(r.Unreferenced, key)
		t, stamped := since[key]
		if stamped {
			r.Since[key] = t
		}
		switch {
		case grace < 0, stamped && now.Sub(t) < grace, !stamped && grace > 0:
			r.Pending = append(r.Pending, key)
		default:
			r.Due = append(r.Due, key)
		}
	}
	sort.Strings(r.Unreferenced)
	sort.Strings(r.Due)
	sort.Strings(r.Pending)
	return r
}

// FetchBytes is the number of bytes the plan brings in (not counting Check entries).
func (p *Plan) FetchBytes() int64 {
	var n int64
	for _, f := range p.Fetch {
		if !f.Check {
			n += f.Size
		}
	}
	return n
}

type productKey struct{ ContentID, Product string }

// MakePlan decides what to hold, fetch and release. It is a pure function of its input.
//
// Per product: when some upstream item matches the filters, the versions to hold are chosen by
// streams.SelectVersions (newest Max of the upstream versions with a matching item, plus, with
// Keep, held versions that vanished upstream); held versions outside that choice are released.
// A product no item of which matches is left as it is held (runs accumulate), except that held
// versions gone upstream are released unless Keep, and with Prune it is released entirely.
//
// Against the target (Listed joined with Objects, or Present): each held path that is not
// present and verified is fetched (or checked, Fetch.Check), held objects a killed run wrote are
// adopted, and the owned objects the Held to be recorded no longer references are released:
// due once unreferenced for Grace by Now, pending until then (planRelease). A run applies the
// plan as it is; it decides nothing itself.
func MakePlan(in PlanInput) *Plan {
	present := in.Present
	var objects map[string]Object
	var drifted []string
	if in.Listed != nil {
		objects = maps.Clone(in.Objects)
		if objects == nil {
			objects = map[string]Object{}
		}
		present, drifted = reconcile(in.Listed, objects)
	}
	// Index upstream: every item by version, and the matching ones.
	type upVersion struct {
		all     map[string]*streams.Item // pointers into in.Upstream: items are large to copy
		matched map[string]*streams.Item
	}
	upstream := map[VersionKey]*upVersion{}
	matchedVersions := map[productKey][]string{}
	for i := range in.Upstream {
		it := &in.Upstream[i]
		vk := VersionKey{it.ContentID, it.Product, it.Version}
		uv := upstream[vk]
		if uv == nil {
			uv = &upVersion{all: map[string]*streams.Item{}, matched: map[string]*streams.Item{}}
			upstream[vk] = uv
		}
		uv.all[it.Name] = it
		if in.Filters.MatchAttrs(it.Attrs) && matchAny(in.FilterGroups, it.Attrs) {
			if len(uv.matched) == 0 {
				pk := productKey{it.ContentID, it.Product}
				matchedVersions[pk] = append(matchedVersions[pk], it.Version)
			}
			uv.matched[it.Name] = it
		}
	}
	heldVersions := map[productKey][]string{}
	for vk := range in.Held {
		pk := productKey{vk.ContentID, vk.Product}
		heldVersions[pk] = append(heldVersions[pk], vk.Version)
	}

	next := Held{}
	var widened []ItemChange
	// Selected products: --max/--keep decide.
	for pk, versions := range matchedVersions {
		for _, v := range streams.SelectVersions(versions, heldVersions[pk], in.Max, in.Keep) {
			vk := VersionKey{pk.ContentID, pk.Product, v}
			uv := upstream[vk]
			if uv == nil { // vanished upstream, kept by --keep
				next[vk] = in.Held[vk]
				continue
			}
			hv := HeldVersion{}
			for name, it := range uv.matched {
				hv[name] = heldItem(it)
			}
			if !in.Prune {
				for name := range in.Held[vk] {
					if it, ok := uv.all[name]; ok {
						hv[name] = heldItem(it)
					}
				}
			}
			if in.WholeVersions {
				for name, it := range uv.all {
					if _, ok := hv[name]; !ok {
						hv[name] = heldItem(it)
						widened = append(widened, ItemChange{vk, name, it.Path, it.Size})
					}
				}
			}
			if len(hv) > 0 {
				next[vk] = hv
			}
		}
	}
	// Products nothing matched this time: kept as held, refreshed from upstream.
	for vk, old := range in.Held {
		pk := productKey{vk.ContentID, vk.Product}
		if _, selected := matchedVersions[pk]; selected || in.Prune {
			continue
		}
		uv := upstream[vk]
		if uv == nil {
			if in.Keep {
				next[vk] = old
			}
			continue
		}
		hv := HeldVersion{}
		for name := range old {
			if it, ok := uv.all[name]; ok {
				hv[name] = heldItem(it)
			}
		}
		if in.WholeVersions && len(hv) > 0 {
			for name, it := range uv.all {
				hv[name] = heldItem(it)
			}
		}
		if len(hv) > 0 {
			next[vk] = hv
		}
	}

	dropShadowed(next, itemsByPath(in.Upstream), func(vk VersionKey) bool { return upstream[vk] == nil })

	sort.Slice(widened, func(i, j int) bool {
		if widened[i].VersionKey != widened[j].VersionKey {
			return widened[i].VersionKey.less(widened[j].VersionKey)
		}
		return widened[i].Item < widened[j].Item
	})
	p := &Plan{Held: next, Widened: widened, Objects: objects, Drifted: drifted}
	p.Added, p.Removed, p.Kept = diffHeld(in.Held, next)

	// Fetch each referenced path once, with every hash some held item gives for it (the
	// catalogue lets one item omit a hash another gives): whichever version sorts first, the
	// content is verified against all the metadata promises. Room for every held item at once:
	// appending a few hundred thousand fetches one by one allocates about five times their size.
	byPath := make(map[string]int, next.Items())
	wanted := make([]Fetch, 0, next.Items())
	for _, vk := range next.Keys() {
		uv := upstream[vk]
		for name, hi := range next[vk] {
			if hi.Path == "" {
				continue
			}
			f := Fetch{Path: hi.Path, Size: hi.Size, SHA256: hi.SHA256}
			if uv != nil {
				if it, ok := uv.all[name]; ok && it.Path == hi.Path {
					f.SHA512, f.MD5 = it.SHA512, it.MD5
				}
			}
			i, seen := byPath[hi.Path]
			if !seen {
				byPath[hi.Path] = len(wanted)
				wanted = append(wanted, f)
				continue
			}
			w := &wanted[i]
			w.SHA256 = cmp.Or(w.SHA256, f.SHA256)
			w.SHA512 = cmp.Or(w.SHA512, f.SHA512)
			w.MD5 = cmp.Or(w.MD5, f.MD5)
		}
	}
	p.Fetch = wanted[:0]
	for _, f := range wanted {
		have, ok := present[f.Path]
		switch {
		case !ok || have.Size != f.Size:
		case in.VerifyExisting || have.SHA256 == "" || f.SHA256 == "":
			f.Check = true
		case have.SHA256 == f.SHA256:
			continue // present and verified
		}
		p.Fetch = append(p.Fetch, f)
	}
	if len(p.Fetch) == 0 {
		p.Fetch = nil
	}
	sort.Slice(p.Fetch, func(i, j int) bool { return p.Fetch[i].Path < p.Fetch[j].Path })
	if !in.MetadataOnly {
		p.Rewrites = rewrites(p.Fetch, in.Held, present)
	}

	if !in.VerifyExisting {
		p.Adopt = adoptable(next, present, in.Listed)
	}

	recorded := next
	if in.MetadataOnly {
		recorded = in.Held
	}
	owned := map[string]bool{}
	for key, have := range present {
		if have.Owned {
			owned[key] = true
		}
	}
	for key := range p.Adopt {
		owned[key] = true // referenced by Held, so released only by a metadata-only run
	}
	p.Release = planRelease(recorded, owned, in.Unreferenced, in.Now, in.Grace)
	return p
}

// rewrites lists the fetches (sorted by path) that would overwrite what published metadata
// names: the path is held (published) with the content the target holds as the mirror's own,
// verified (Presence.Owned, with its sha256), and the fetch brings other content.
func rewrites(fetch []Fetch, held Held, present map[string]Presence) []Rewrite {
	var out []Rewrite
	var published map[string]HeldItem
	for _, f := range fetch {
		have, ok := present[f.Path]
		if !ok || !have.Owned || have.SHA256 == "" {
			continue
		}
		if have.Size == f.Size && (f.SHA256 == "" || strings.EqualFold(have.SHA256, f.SHA256)) {
			continue // a re-check of the same content
		}
		if published == nil {
			published = map[string]HeldItem{}
			for _, hv := range held {
				for _, hi := range hv {
					if hi.Path != "" {
						published[hi.Path] = hi
					}
				}
			}
		}
		old, ok := published[f.Path]
		if !ok || old.Size != have.Size || old.SHA256 != "" && !strings.EqualFold(old.SHA256, have.SHA256) {
			continue // published metadata does not name these bytes
		}
		out = append(out, Rewrite{Path: f.Path, Size: have.Size, SHA256: have.SHA256, NewSize: f.Size, NewSHA256: f.SHA256})
	}
	return out
}

// adoptable lists the held content objects present with the catalogue's size and the sha256
// the store recorded for them but not owned (Plan.Adopt), with the listed ETag when known.
func adoptable(held Held, present map[string]Presence, listed map[string]store.Info) map[string]Object {
	var adopt map[string]Object
	for _, hv := range held {
		for _, hi := range hv {
			if hi.Path == "" || hi.SHA256 == "" {
				continue
			}
			p, ok := present[hi.Path]
			if !ok || p.Owned || p.Size != hi.Size || !strings.EqualFold(p.SHA256, hi.SHA256) {
				continue
			}
			if adopt == nil {
				adopt = map[string]Object{}
			}
			adopt[hi.Path] = Object{Size: hi.Size, SHA256: strings.ToLower(hi.SHA256), ETag: listed[hi.Path].ETag}
		}
	}
	return adopt
}

// itemsByPath maps every content path upstream lists to (the first of) its items.
func itemsByPath(items []streams.Item) map[string]*streams.Item {
	paths := make(map[string]*streams.Item, len(items))
	for i := range items {
		if p := items[i].Path; p != "" {
			if _, ok := paths[p]; !ok {
				paths[p] = &items[i]
			}
		}
	}
	return paths
}

// dropShadowed removes from next the items of versions gone upstream (kept by Keep) whose path
// upstream now lists with other content (another size or sha256): the path can hold only one
// of them, and it is upstream's that the published metadata promises. Without this, whichever
// version sorted first decided what the path was fetched as. Maps shared with the plan's input
// are copied, not changed.
func dropShadowed(next Held, upPaths map[string]*streams.Item, vanished func(VersionKey) bool) {
	for vk, hv := range next {
		if !vanished(vk) {
			continue
		}
		var kept HeldVersion
		for name, hi := range hv {
			u, ok := upPaths[hi.Path]
			if hi.Path != "" && ok && (u.Size != hi.Size || u.SHA256 != "" && hi.SHA256 != "" && u.SHA256 != hi.SHA256) {
				if kept == nil {
					kept = make(HeldVersion, len(hv))
					for n, h := range hv {
						kept[n] = h
					}
				}
				delete(kept, name)
			}
		}
		switch {
		case kept == nil:
		case len(kept) == 0:
			delete(next, vk)
		default:
			next[vk] = kept
		}
	}
}

// matchAny reports whether some group matches (true when there are no groups).
func matchAny(groups []streams.Filters, attrs streams.Attrs) bool {
	if len(groups) == 0 {
		return true
	}
	for _, g := range groups {
		if g.MatchAttrs(attrs) {
			return true
		}
	}
	return false
}

func heldItem(it *streams.Item) HeldItem {
	return HeldItem{Path: it.Path, Size: it.Size, SHA256: it.SHA256}
}

// diffHeld lists the items only in before (removed), only in after (added), and counts the rest.
func diffHeld(before, after Held) (added, removed []ItemChange, kept int) {
	n := 0
	for vk, hv := range after {
		for name := range hv {
			if _, ok := before[vk][name]; !ok {
				n++
			}
		}
	}
	if n > 0 {
		added = make([]ItemChange, 0, n) // appended one by one, they would take five times more
	}
	for _, vk := range after.Keys() {
		for _, name := range sortedItems(after[vk]) {
			if _, ok := before[vk][name]; ok {
				kept++
				continue
			}
			hi := after[vk][name]
			added = append(added, ItemChange{vk, name, hi.Path, hi.Size})
		}
	}
	for _, vk := range before.Keys() {
		for _, name := range sortedItems(before[vk]) {
			if _, ok := after[vk][name]; ok {
				continue
			}
			hi := before[vk][name]
			removed = append(removed, ItemChange{vk, name, hi.Path, hi.Size})
		}
	}
	return added, removed, kept
}

func sortedItems(hv HeldVersion) []string {
	names := make([]string, 0, len(hv))
	for n := range hv {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
