package sync

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/ssmirror/ssmirror/store"
)

// What a run may clean up: leftovers it provably owns.
//
// A killed run leaves incomplete multipart uploads (S3) and temporary files (a directory)
// behind; the next run of the same target, holding its lease, removes them. Other writers may
// be at work under the same prefix or directory at the same moment: another application in the
// bucket, or another ssmirror target nested under this one (s3://b/m/lxd inside s3://b/m,
// DIR/lxd inside DIR), whose own lease this run does not hold. So a leftover is removed only
// when it is this target's own, by its key: an upload whose key is one this target writes (a
// path of upstream's catalogue, a key its state records, its metadata and control keys), or a
// temporary file in a directory of such a key (a temporary file's name does not say its key);
// and never one under a nested target (a prefix whose .ssmirror/ holds a lock or a state). No
// age bound is needed on top: only the lease holder writes this target's keys, and a writer
// that lost the lease is fenced. What a killed run left at a key this target no longer names
// (upstream dropped the version meanwhile) stays: a bucket lifecycle rule
// (AbortIncompleteMultipartUpload) removes such uploads, and the operator guide says so.

// ownership is the set of keys a target writes, and the prefixes of the targets nested in it.
type ownership struct {
	keys   map[string]bool
	dirs   map[string]bool // "a/b/" (or "" for the root) of every key
	nested []string
}

func newOwnership(listed map[string]store.Info) *ownership {
	return &ownership{keys: map[string]bool{}, dirs: map[string]bool{}, nested: nestedTargets(listed)}
}

func (o *ownership) add(key string) {
	o.keys[key] = true
	if d := path.Dir(key); d != "." {
		o.dirs[d+"/"] = true
	} else {
		o.dirs[""] = true
	}
}

// addState adds every key st records: content objects, metadata, held paths, and the control keys.
func (o *ownership) addState(st *State) {
	o.add(LockKey)
	o.add(StateKey)
	for key := range st.Objects {
		o.add(key)
	}
	for key := range st.Published {
		o.add(key)
	}
	for p := range st.Held.Paths() {
		o.add(p)
	}
}

// nestedIn returns the nested target's prefix holding key (a key or a directory prefix), or "".
func (o *ownership) nestedIn(key string) string {
	for _, n := range o.nested {
		if strings.HasPrefix(key, n) {
			return n
		}
	}
	return ""
}

// mine reports whether the leftover of a write of key (or, for a directory prefix ending in
// "/" or "", of a temporary file in that directory) is this target's (store.LeftoverOptions.Mine).
func (o *ownership) mine(key string) bool {
	if o.nestedIn(key) != "" {
		return false
	}
	if key == "" || strings.HasSuffix(key, "/") {
		return o.dirs[key]
	}
	return o.keys[key]
}

// nestedTargets lists, sorted, the prefixes ("lxd/") under which the listing shows another
// target's lock or state.
func nestedTargets(listed map[string]store.Info) []string {
	var out []string
	for key := range listed {
		for _, c := range []string{LockKey, StateKey} {
			if p, ok := strings.CutSuffix(key, "/"+c); ok && p != "" {
				out = append(out, p+"/")
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// NestedTargetError says that another ssmirror target lies under a prefix of this one and that
// this run would write or delete a key inside it: the two would overwrite or delete each other's
// objects, so the run refuses before it writes anything. Targets nested so that no key of the
// outer one lies under the inner one are safe: neither touches the other's objects or leftovers.
type NestedTargetError struct {
	Target string // this target
	Nested string // the nested target's prefix, relative to this one ("lxd/")
	Key    string // a key of this target under it
}

func (e *NestedTargetError) Error() string {
	return fmt.Sprintf("%s holds another ssmirror target under %s (it has its own %s%s), and this run would write or delete %s inside it; refusing to run, nothing was written: nested targets are safe only when no path of the outer one lies under the inner one (move one of them, or narrow the outer one's selection)",
		e.Target, e.Nested, e.Nested, controlDir, e.Key)
}

// checkNested refuses keys this target would write or delete that lie under a nested target.
func checkNested(dst store.Target, o *ownership, keys map[string]bool) error {
	if len(o.nested) == 0 {
		return nil
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if n := o.nestedIn(k); n != "" {
			return &NestedTargetError{Target: store.Describe(dst), Nested: n, Key: k}
		}
	}
	return nil
}

// ownLeftovers is what the run owns (ownership): the keys of upstream's catalogue, of its state
// and of plan, and the targets nested in this one. It refuses a plan that writes or deletes a
// key under a nested target (NestedTargetError).
func (r *run) ownLeftovers(plan *Plan) (*ownership, error) {
	o := newOwnership(r.st.listed)
	touched := map[string]bool{}
	for _, k := range controlKeys(r.cat) {
		o.add(k)
		touched[k] = true
	}
	for p := range plan.Held.Paths() {
		touched[p] = true
	}
	for k := range plan.Objects {
		touched[k] = true
	}
	if err := checkNested(r.dst, o, touched); err != nil {
		return nil, err
	}
	for i := range r.upstream {
		if p := r.upstream[i].Path; p != "" {
			o.add(p)
		}
	}
	o.addState(r.st)
	for k := range touched {
		o.add(k)
	}
	return o, nil
}

// cleanLeftovers aborts the incomplete multipart uploads (S3) and removes the temporary files
// (directory) that interrupted runs of this target left: those o says are its own. Failure to
// clean is logged, not fatal.
func cleanLeftovers(ctx context.Context, dst store.Target, o *ownership, log *slog.Logger) {
	c, ok := store.As[store.LeftoverCleaner](dst)
	if !ok {
		return
	}
	n, err := c.CleanLeftovers(ctx, store.LeftoverOptions{Mine: o.mine})
	if err != nil {
		log.Warn("could not clean up after an interrupted run", "error", err)
	} else if n > 0 {
		log.Info("cleaned up after an interrupted run", "leftovers", n)
	}
}
