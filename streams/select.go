package streams

import "slices"

// SelectVersions applies sstream-mirror's --max/--keep to one product. upstream are the versions
// upstream offers that still have at least one selected item; held are the versions the mirror
// holds now. It returns the versions to hold, sorted oldest first: the newest max (byte-string
// order) of upstream, plus, with keep, held versions that vanished upstream while room remains
// (newest first). max <= 0 means no limit.
func SelectVersions(upstream, held []string, max int, keep bool) []string {
	up := slices.Clone(upstream)
	slices.Sort(up)
	up = slices.Compact(up)
	slices.Reverse(up) // newest first
	room := func(n int) bool { return max <= 0 || n < max }

	var out []string
	for _, v := range up {
		if !room(len(out)) {
			break
		}
		out = append(out, v)
	}
	if keep {
		gone := make([]string, 0, len(held))
		for _, v := range held {
			if _, found := slices.BinarySearchFunc(up, v, func(a, b string) int {
				// up is sorted newest first.
				switch {
				case a > b:
					return -1
				case a < b:
					return 1
				}
				return 0
			}); !found {
				gone = append(gone, v)
			}
		}
		slices.Sort(gone)
		gone = slices.Compact(gone)
		slices.Reverse(gone)
		for _, v := range gone {
			if !room(len(out)) {
				break
			}
			out = append(out, v)
		}
	}
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}
