package streams

import (
	"fmt"
	"slices"
	"strings"
)

// ExplainNoMatch says, for filters that select none of items, which filter is to blame and what
// the items do have, as one line for an operator. It names the first filter that on its own
// matches no item: for a key no item has, the nearest known keys by edit distance; for a value
// no item has, the values that key does take (and the likely fix for a doubled operator, as in
// arch==amd64). When every filter matches some item on its own, it names the first one that
// leaves nothing of what the filters before it selected, with that key's values among those
// items. It returns "" when the filters do select some item.
func ExplainNoMatch(items []Item, fs Filters) string {
	if len(items) == 0 {
		return "the catalogue lists no item at all"
	}
	all := make([]int32, len(items))
	for i := range all {
		all[i] = int32(i)
	}
	for _, f := range fs {
		if matchesSome(items, all, f) {
			continue
		}
		return explainFilter(items, all, f, "")
	}
	// Each filter matches on its own: find the one that empties what the earlier ones left.
	left := all
	for i, f := range fs {
		var next []int32
		for _, j := range left {
			if f.MatchAttrs(items[j].Attrs) {
				next = append(next, j)
			}
		}
		if len(next) == 0 {
			before := strings.Join(fs[:i].Strings(), " ")
			return fmt.Sprintf("%s and %s match no item together: %s", before, f,
				explainFilter(items, left, f, fmt.Sprintf("of the %d that %s selects", len(left), before)))
		}
		left = next
	}
	return ""
}

// matchesSome reports whether f matches some of the items at positions idx.
func matchesSome(items []Item, idx []int32, f Filter) bool {
	for _, j := range idx {
		if f.MatchAttrs(items[j].Attrs) {
			return true
		}
	}
	return false
}

// explainFilter explains why f matches none of the items at positions idx; where, when not "",
// says which items those are.
func explainFilter(items []Item, idx []int32, f Filter, where string) string {
	values := map[string]int{}
	keys := map[string]bool{}
	for _, j := range idx {
		for k, v := range items[j].Attrs.All() {
			keys[k] = true
			if k == f.Key {
				values[v]++
			}
		}
	}
	if where != "" {
		where = " " + where
	}
	if !keys[f.Key] {
		msg := fmt.Sprintf("no item%s has the key %q", where, f.Key)
		if near := NearestWords(f.Key, slices.Sorted(mapKeys(keys)), 3); len(near) > 0 {
			msg += fmt.Sprintf(" (nearest known keys: %s)", strings.Join(near, ", "))
		}
		return msg
	}
	known := slices.Sorted(mapKeys(values))
	var msg string
	switch f.Op {
	case "=":
		msg = fmt.Sprintf("no item%s has %s %q", where, f.Key, f.Value)
	case "~":
		msg = fmt.Sprintf("no %s value%s matches the regex %q", f.Key, where, f.Value)
	case "!=":
		msg = fmt.Sprintf("every item%s has %s %q", where, f.Key, f.Value)
	case "!~":
		msg = fmt.Sprintf("every %s value%s matches the regex %q", f.Key, where, f.Value)
	default:
		return fmt.Sprintf("filter %s has no valid operator", f)
	}
	msg += fmt.Sprintf("; %s is one of: %s", f.Key, listValues(known, 12))
	if f.Op == "=" || f.Op == "~" {
		// arch==amd64 parses as arch = "=amd64"; arch=~x as arch = "~x".
		if v := strings.TrimLeft(f.Value, "=~!"); v != f.Value && v != "" {
			if g, err := ParseFilter(f.Key + f.Value); err == nil && g.Op != f.Op && matchesSome(items, idx, g) {
				msg += fmt.Sprintf(" (did you mean %s?)", g)
			} else if g := (Filter{f.Key, f.Op, v}); matchesSome(items, idx, g) {
				msg += fmt.Sprintf(" (did you mean %s?)", g)
			}
		} else if f.Op == "=" {
			if near := NearestWords(f.Value, known, 1); len(near) > 0 {
				msg += fmt.Sprintf(" (did you mean %s=%s?)", f.Key, near[0])
			}
		}
	}
	return msg
}

// listValues quotes up to n values and says how many more there are.
func listValues(vals []string, n int) string {
	q := make([]string, 0, min(len(vals), n))
	for i, v := range vals {
		if i == n {
			break
		}
		q = append(q, fmt.Sprintf("%q", v))
	}
	s := strings.Join(q, ", ")
	if len(vals) > n {
		s += fmt.Sprintf(" and %d more", len(vals)-n)
	}
	return s
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// NearestWords returns up to n of words nearest to w by edit distance (Levenshtein, case
// folded), nearest first, ties in the order of words; only words within a distance of
// max(2, len(w)/3) count as near.
func NearestWords(w string, words []string, n int) []string {
	limit := max(2, len([]rune(w))/3)
	type cand struct {
		word string
		d, i int
	}
	var cands []cand
	lw := strings.ToLower(w)
	for i, x := range words {
		if x == w {
			continue
		}
		if d := EditDistance(lw, strings.ToLower(x)); d <= limit {
			cands = append(cands, cand{x, d, i})
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return a.d - b.d })
	out := make([]string, 0, min(n, len(cands)))
	for _, c := range cands[:min(n, len(cands))] {
		out = append(out, c.word)
	}
	return out
}

// EditDistance is the Levenshtein distance between a and b, by runes: how near a typed word is
// to a known one, for the suggestions of this package and of the commands.
func EditDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
