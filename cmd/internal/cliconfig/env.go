package cliconfig

import (
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"github.com/ssmirror/ssmirror/streams"
)

// BaseEnvNames are the SSMIRROR_* variables every binary reads besides its flags' own.
var BaseEnvNames = []string{"SOURCE", "TARGET", "FILTERS", "CONFIG", "SIGNING_PASSPHRASE"}

// KnownEnv returns the sorted SSMIRROR_* names of extra (without the prefix) and of every flag
// of the flag sets.
func KnownEnv(extra []string, sets ...*pflag.FlagSet) []string {
	seen := map[string]bool{}
	for _, n := range extra {
		seen[EnvPrefix+n] = true
	}
	for _, fs := range sets {
		fs.VisitAll(func(f *pflag.Flag) { seen[EnvName(f.Name)] = true })
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UnknownVar is an SSMIRROR_* variable of the environment that is not a setting.
type UnknownVar struct {
	Name string
	// Near is the known name it is probably a typo of ("" when none is close).
	Near string
}

// UnknownEnv returns the SSMIRROR_* variables of environ ("NAME=value" strings) that are not in
// known (sorted), each with the nearest known name, in environ's order.
func UnknownEnv(environ []string, known func() []string) []UnknownVar {
	var names []string
	var out []UnknownVar
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if names == nil {
			names = known()
		}
		if i := sort.SearchStrings(names, name); i < len(names) && names[i] == name {
			continue
		}
		out = append(out, UnknownVar{Name: name, Near: NearestName(name, names)})
	}
	return out
}

// NearestName is the candidate closest to s (case-sensitive edit distance), if close enough to
// be a typo of it.
func NearestName(s string, candidates []string) string {
	best, bestD := "", 4
	for _, c := range candidates {
		limit := max(1, (len(c)-len(EnvPrefix))/3)
		if d := streams.EditDistance(s, c); d < bestD && d <= limit {
			best, bestD = c, d
		}
	}
	return best
}
