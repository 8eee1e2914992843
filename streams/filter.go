package streams

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// Filter is one sstream-mirror filter: key=value, key!=value, key~regex, key!~regex.
type Filter struct {
	Key   string
	Op    string // "=", "!=", "~", "!~"
	Value string
}

// ParseFilter parses one filter argument. The key is one or more of A-Z a-z 0-9 _ . : -; the
// operator (=, !=, ~ or !~) follows it directly; the value is the rest, any characters at all
// (it may be empty). A regex value must compile as Go (RE2) syntax.
func ParseFilter(s string) (Filter, error) {
	i := 0
	for i < len(s) && isKeyChar(s[i]) {
		i++
	}
	if i == 0 {
		return Filter{}, fmt.Errorf("filter %q: no key (want key=value, key!=value, key~regex or key!~regex)", s)
	}
	f := Filter{Key: s[:i]}
	rest := s[i:]
	for _, op := range []string{"!=", "!~", "=", "~"} {
		if strings.HasPrefix(rest, op) {
			f.Op, f.Value = op, rest[len(op):]
			break
		}
	}
	if f.Op == "" {
		return Filter{}, fmt.Errorf("filter %q: no operator after key %q (want =, !=, ~ or !~)", s, f.Key)
	}
	if f.Op == "~" || f.Op == "!~" {
		if _, err := compileRegexp(f.Value); err != nil {
			return Filter{}, fmt.Errorf("filter %q: %w", s, err)
		}
	}
	return f, nil
}

func isKeyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == ':' || c == '-'
}

// regexps caches compiled filter patterns (Filter is a plain comparable value type, so it cannot
// carry one). At most maxCachedRegexps are kept; others are compiled on every use.
var (
	regexps       sync.Map // string → *regexp.Regexp
	regexpsCached atomic.Int64
)

const maxCachedRegexps = 1024

func compileRegexp(pattern string) (*regexp.Regexp, error) {
	if re, ok := regexps.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	if regexpsCached.Add(1) <= maxCachedRegexps {
		regexps.Store(pattern, re)
	}
	return re, nil
}

// String gives the filter back as it would be written on a command line.
func (f Filter) String() string { return f.Key + f.Op + f.Value }

// Match tests effective attributes; a missing key compares as "". Regexes search unanchored
// (use ^ and $ to anchor). A filter that ParseFilter would reject (unknown operator, bad regex)
// matches nothing.
func (f Filter) Match(attrs map[string]string) bool { return f.matchValue(attrs[f.Key]) }

// MatchAttrs is Match on an item's attributes.
func (f Filter) MatchAttrs(attrs Attrs) bool { return f.matchValue(attrs.Value(f.Key)) }

func (f Filter) matchValue(v string) bool {
	switch f.Op {
	case "=":
		return v == f.Value
	case "!=":
		return v != f.Value
	case "~", "!~":
		re, err := compileRegexp(f.Value)
		if err != nil {
			return false
		}
		return re.MatchString(v) == (f.Op == "~")
	}
	return false
}

// Filters are ANDed.
type Filters []Filter

// ParseFilters parses several filter arguments.
func ParseFilters(args []string) (Filters, error) {
	fs := make(Filters, 0, len(args))
	for _, a := range args {
		f, err := ParseFilter(a)
		if err != nil {
			return nil, err
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// Match reports whether every filter holds (true for no filters).
func (fs Filters) Match(attrs map[string]string) bool { return fs.MatchAttrs(NewAttrs(attrs)) }

// MatchAttrs is Match on an item's attributes.
func (fs Filters) MatchAttrs(attrs Attrs) bool {
	for _, f := range fs {
		if !f.MatchAttrs(attrs) {
			return false
		}
	}
	return true
}

// Strings gives the filters back as command-line arguments.
func (fs Filters) Strings() []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}
