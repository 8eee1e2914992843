package cliconfig

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/ssmirror/ssmirror/streams"
)

// Filters as the command line, $SSMIRROR_FILTERS and the config file's [filter] sections write
// them, with the mistakes that would otherwise be misread (blanks around an operator) explained.

// ParseGroups parses filter groups written as in $SSMIRROR_FILTERS: filters separated by
// blanks, groups by ";". No group may be empty (it would select everything).
func ParseGroups(v string) ([]streams.Filters, error) {
	var groups []streams.Filters
	for _, g := range strings.Split(v, ";") {
		fl, err := ParseFilterArgs(strings.Fields(g))
		if err != nil {
			return nil, err
		}
		if len(fl) == 0 {
			return nil, errors.New("an empty filter group would select everything")
		}
		groups = append(groups, fl)
	}
	return groups, nil
}

// filterOps are the filter operators, and what a user may type for one.
var filterOps = []string{"!=", "!~", "==", "=", "~"}

func isFilterOp(s string) bool {
	for _, op := range filterOps {
		if s == op {
			return true
		}
	}
	return false
}

func isFilterKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isKeyByte(s[i]) {
			return false
		}
	}
	return true
}

func isKeyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-'
}

// splitFilter reports whether args[i:] starts with one filter split by blanks around its
// operator ("arch" "=" "amd64", "arch=" "amd64", "arch" "=amd64"), and how many arguments it
// spans.
func splitFilter(args []string, i int) (n int, ok bool) {
	a := args[i]
	next := func(k int) string {
		if i+k < len(args) {
			return args[i+k]
		}
		return ""
	}
	switch {
	case isFilterKey(a) && isFilterOp(next(1)):
		if next(2) != "" {
			return 3, true
		}
		return 2, true
	case isFilterKey(a) && next(1) != "" && hasOpPrefix(next(1)):
		return 2, true
	case isFilterKey(strings.TrimRight(a, "!=~")) && hasOpSuffix(a) && next(1) != "":
		return 2, true
	}
	return 0, false
}

func hasOpPrefix(s string) bool {
	for _, op := range filterOps {
		if strings.HasPrefix(s, op) {
			return true
		}
	}
	return false
}

func hasOpSuffix(s string) bool {
	for _, op := range filterOps {
		if strings.HasSuffix(s, op) && len(s) > len(op) {
			return true
		}
	}
	return false
}

// ParseFilterArgs parses filters given as separate words (command line, $SSMIRROR_FILTERS),
// explaining a filter split by blanks around its operator.
func ParseFilterArgs(args []string) (streams.Filters, error) {
	for i := range args {
		if n, ok := splitFilter(args, i); ok {
			words := args[i : i+n]
			return nil, fmt.Errorf("filter %q: blanks around the operator split it into %d words; write it as one, without blanks: %s",
				strings.Join(words, " "), n, strings.Join(words, ""))
		}
	}
	return streams.ParseFilters(args)
}

// blankOp matches a filter line with blanks around its operator.
var blankOp = regexp.MustCompile(`^([A-Za-z0-9_.:-]+)(\s*)(!=|!~|==|=|~)(\s*)(.*)$`)

// ParseFilterLine parses one line of a [filter] section, explaining blanks around the operator.
func ParseFilterLine(line string) (streams.Filter, error) {
	if m := blankOp.FindStringSubmatch(line); m != nil && (m[2] != "" || m[4] != "") {
		return streams.Filter{}, fmt.Errorf("filter %q: blanks around the operator (they would be part of the key or the value); write %s%s%s",
			line, m[1], m[3], m[5])
	}
	return streams.ParseFilter(line)
}

// settingInFilter explains a "key = value" line found in a [filter] section whose key is a
// setting (isSetting): settings after a [filter] header belong to the section.
func settingInFilter(line string, sectionLine int, isSetting func(string) bool) error {
	m := blankOp.FindStringSubmatch(line)
	if m == nil || m[3] != "=" {
		return nil
	}
	k := strings.ReplaceAll(m[1], "_", "-")
	blanks := m[2] != "" || m[4] != ""
	// path is an item attribute as well as a flag: path=… is a filter.
	if !isSetting(k) || (!blanks && k == "path") {
		return nil
	}
	return fmt.Errorf("%q is a setting, but it follows the [filter] header on line %d, so it is read as a filter of that section: settings go before the first [filter] section", line, sectionLine)
}

// LooksLikeFilter reports whether a SOURCE or TARGET argument is in fact a filter (key=value,
// key~regex…): what a forgotten argument shifts into its place. A directory whose name has =
// or ~ in it is still reachable as ./name.
func LooksLikeFilter(arg string) bool {
	if strings.ContainsAny(arg, "/\\") {
		return false
	}
	_, err := streams.ParseFilter(arg)
	return err == nil
}
