package sync

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ssmirror/ssmirror/streams"
)

// Refusals decided before a run writes anything: a selection that selects nothing (a filter
// typo would otherwise publish a catalogue with nothing behind it) and items whose paths are the
// mirror's own control or metadata files (an item at .ssmirror/lock would overwrite the lock).

// EmptySelectionError says that the filters (or some filter groups) select no item upstream
// (Run returns it unless Options.AllowEmpty).
type EmptySelectionError struct {
	// Groups are the filter groups that select nothing, each with why.
	Groups []EmptyGroup
	// OfGroups is how many filter groups the selection has (0: one plain list of filters).
	OfGroups int
}

// EmptyGroup is one filter group that selects nothing.
type EmptyGroup struct {
	Index   int             // 1-based position among the groups (0 without groups)
	Filters streams.Filters // the filters in force for it (common filters and the group's)
	Reason  string          // streams.ExplainNoMatch's explanation
}

func (e *EmptySelectionError) Error() string {
	var b strings.Builder
	const advice = "nothing was written; an empty selection is refused unless allowed"
	if e.OfGroups == 0 || len(e.Groups) == 0 {
		b.WriteString("the selection matches no item")
		if len(e.Groups) > 0 {
			if fs := e.Groups[0].Filters; len(fs) > 0 {
				fmt.Fprintf(&b, " (%s)", strings.Join(fs.Strings(), " "))
			}
			fmt.Fprintf(&b, ": %s", e.Groups[0].Reason)
		}
		b.WriteString(" (" + advice + ")")
		return b.String()
	}
	if len(e.Groups) == e.OfGroups {
		b.WriteString("the selection matches no item:")
	} else {
		fmt.Fprintf(&b, "%d of %d filter groups match no item:", len(e.Groups), e.OfGroups)
	}
	for _, g := range e.Groups {
		fmt.Fprintf(&b, "\n  filter group %d (%s): %s", g.Index, strings.Join(g.Filters.Strings(), " "), g.Reason)
	}
	b.WriteString("\n" + advice)
	return b.String()
}

// CheckSelection returns an *EmptySelectionError when filters select no item of upstream, or
// when some filter group (ANDed with filters) selects none: each group is a deliberate choice,
// so a typo in one of them is refused even when the others select items. It is a pure function.
func CheckSelection(upstream []streams.Item, filters streams.Filters, groups []streams.Filters) error {
	if len(groups) == 0 {
		for i := range upstream {
			if filters.MatchAttrs(upstream[i].Attrs) {
				return nil
			}
		}
		return &EmptySelectionError{Groups: []EmptyGroup{{Filters: filters, Reason: streams.ExplainNoMatch(upstream, filters)}}}
	}
	found := make([]bool, len(groups))
	left := len(groups)
	for i := range upstream {
		if left == 0 {
			break
		}
		attrs := upstream[i].Attrs
		if !filters.MatchAttrs(attrs) {
			continue
		}
		for g, fs := range groups {
			if !found[g] && fs.MatchAttrs(attrs) {
				found[g] = true
				left--
			}
		}
	}
	if left == 0 {
		return nil
	}
	e := &EmptySelectionError{OfGroups: len(groups)}
	for g, fs := range groups {
		if found[g] {
			continue
		}
		all := append(append(streams.Filters{}, filters...), fs...)
		e.Groups = append(e.Groups, EmptyGroup{Index: g + 1, Filters: all, Reason: streams.ExplainNoMatch(upstream, all)})
	}
	return e
}

// ControlPathError refuses items whose content path is one of the mirror's own files.
type ControlPathError struct {
	Items []ControlPathItem
}

// ControlPathItem is one refused item.
type ControlPathItem struct {
	Version VersionKey
	Item    string
	Path    string
	// Why says what of the mirror's own the path clashes with.
	Why string
}

func (e *ControlPathError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "refusing to mirror %d item(s) whose path is one of the mirror's own files (nothing was written):", len(e.Items))
	for i, it := range e.Items {
		if i == 10 {
			fmt.Fprintf(&b, "\n  … and %d more", len(e.Items)-10)
			break
		}
		fmt.Fprintf(&b, "\n  %s item %s: path %s %s", it.Version, it.Item, it.Path, it.Why)
	}
	return b.String()
}

// why says what about the mirror a content path would clash with.
func why(p string, reserved map[string]bool, dirOf map[string]string) string {
	// Compared without case: a directory target on a case-insensitive file system would put
	// .SSMIRROR/lock where .ssmirror/lock is.
	p = strings.ToLower(p)
	switch {
	case p == LockKey:
		return "is the mirror's lock"
	case p == StateKey:
		return "is the mirror's state"
	case reserved[p]:
		return "is one of the mirror's metadata files"
	case dirOf[p] != "":
		return "would stand where the directory of the mirror's " + dirOf[p] + " is"
	case strings.HasPrefix(p, controlDir):
		return "is under the mirror's control directory " + controlDir
	case strings.HasPrefix(p, metadataDir):
		return "is under the mirror's metadata directory " + metadataDir
	}
	return ""
}

// controlKeys lists the keys the mirror writes besides content: its lock and state, and every
// form of the index and of each products file of cat.
func controlKeys(cat *Catalogue) []string {
	keys := []string{LockKey, StateKey}
	bases := []string{cat.IndexBase}
	for _, pf := range cat.Products {
		bases = append(bases, pf.Base)
		for _, mf := range pf.Forms {
			keys = append(keys, mf.Key)
		}
	}
	for _, mf := range cat.IndexForms {
		keys = append(keys, mf.Key)
	}
	for _, b := range bases {
		for _, e := range metadataForms {
			keys = append(keys, b+e)
		}
	}
	return keys
}

// CheckControlPaths refuses held items whose path is, or is a directory of, one of control (the
// mirror's own lock, state and metadata keys), or lies under .ssmirror/ or streams/v1/. It is a
// pure function.
func CheckControlPaths(held Held, control []string) error {
	reserved := make(map[string]bool, len(control))
	// Every directory of a control key is reserved too: an object there would, in a directory
	// target, stand where the directory has to be.
	dirOf := map[string]string{}
	for _, k := range control {
		k = strings.ToLower(k)
		reserved[k] = true
		for i := strings.IndexByte(k, '/'); i >= 0; i = nextSlash(k, i) {
			if _, ok := dirOf[k[:i]]; !ok {
				dirOf[k[:i]] = k
			}
		}
	}
	var bad []ControlPathItem
	for vk, hv := range held {
		for name, hi := range hv {
			if hi.Path == "" {
				continue
			}
			if w := why(hi.Path, reserved, dirOf); w != "" {
				bad = append(bad, ControlPathItem{Version: vk, Item: name, Path: hi.Path, Why: w})
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Slice(bad, func(i, j int) bool {
		if bad[i].Path != bad[j].Path {
			return bad[i].Path < bad[j].Path
		}
		if bad[i].Version != bad[j].Version {
			return bad[i].Version.less(bad[j].Version)
		}
		return bad[i].Item < bad[j].Item
	})
	return &ControlPathError{Items: bad}
}

// checkMetadataKeys refuses a catalogue whose index or products files would be published under
// the mirror's control directory (.ssmirror/, compared without case as in why): an index entry
// naming .ssmirror/lock or .ssmirror/state.json as its products file would have upstream's bytes
// replace the mirror's lock or state. It is a pure function.
func checkMetadataKeys(cat *Catalogue) error {
	check := func(what, key string) error {
		if strings.HasPrefix(strings.ToLower(key), controlDir) {
			return fmt.Errorf("refusing to publish %s at %s: it is under the mirror's control directory %s (nothing was written)", what, key, controlDir)
		}
		return nil
	}
	if err := check("the index", cat.StartPath); err != nil {
		return err
	}
	for _, pf := range cat.Products {
		if err := check("the products file of index entry "+pf.ContentID, pf.Base+".json"); err != nil {
			return err
		}
	}
	return nil
}

// nextSlash finds the next "/" in k after position i (-1 when none).
func nextSlash(k string, i int) int {
	j := strings.IndexByte(k[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// ErrRewritten is wrapped by the error of a run refused because upstream rewrote in place a path
// the mirror published (RewriteError).
var ErrRewritten = errors.New("upstream rewrote content the mirror published, at the same path")

// RewriteError refuses a plan with Rewrites: upstream lists other content (size, sha256) at a
// path whose published content the target holds. Writing it would put, for as long as the run
// takes and for ever if it fails or is killed before it publishes, bytes under the published
// metadata that are not the ones it names (a reader checking them fails, a reader trusting
// them is served wrong bytes). Nothing is written: the mirror keeps serving its published,
// consistent catalogue.
type RewriteError struct {
	Rewrites []Rewrite
	Target   string // where, for the message
}

func (e *RewriteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %d path(s) in %s", ErrRewritten, len(e.Rewrites), e.Target)
	for i, rw := range e.Rewrites {
		if i == 3 {
			fmt.Fprintf(&b, ", and %d more", len(e.Rewrites)-3)
			break
		}
		fmt.Fprintf(&b, "; %s: published %d bytes sha256 %s, upstream now %d bytes sha256 %s", rw.Path, rw.Size, short(rw.SHA256), rw.NewSize, short(rw.NewSHA256))
	}
	b.WriteString(" (nothing was written; overwriting them would put bytes under the published metadata that it does not name; to take upstream's new content, delete these objects from the target, which readers then find missing, never wrong, until the next run fetches and publishes them)")
	return b.String()
}

func (e *RewriteError) Unwrap() error { return ErrRewritten }

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12] + "…"
	}
	return sum
}
