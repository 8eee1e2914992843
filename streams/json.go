package streams

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// This file holds the package's own JSON reader and writer. encoding/json cannot do what a
// lossless, hostile-input-proof catalogue reader needs: it accepts duplicate keys (last wins),
// replaces invalid UTF-8 silently and turns numbers into float64. The reader here walks the
// document once, rejects those inputs, and hands out every value as "canonical raw JSON": the
// token exactly as spelled for scalars, and for objects and arrays a compact form with members
// sorted by key. The writer indents with one space and sorts keys, as python's
// json.dumps(indent=1, sort_keys=True) does.

// MaxDepth is the deepest nesting of objects and arrays a document may have.
const MaxDepth = 64

// scanner reads one JSON document. data must be valid UTF-8 (checked by newScanner).
type scanner struct {
	data  []byte
	pos   int
	depth int
	seen  [][]string // per depth: keys of the object being read there (duplicate check)
	keys  map[string]string
}

// maxInterned bounds the table of interned keys.
const maxInterned = 4096

// key decodes an object key, sharing one string per distinct key: catalogues repeat the same
// few keys on every item.
func (s *scanner) key(tok []byte, escaped bool) string {
	if escaped {
		return unquote(tok, true)
	}
	raw := tok[1 : len(tok)-1]
	if k, ok := s.keys[string(raw)]; ok {
		return k
	}
	k := string(raw)
	if s.keys == nil {
		s.keys = make(map[string]string, 64)
	}
	if len(s.keys) < maxInterned {
		s.keys[k] = k
	}
	return k
}

// newScanner checks data is UTF-8 and prepares to read it.
func newScanner(data []byte) (*scanner, error) {
	if !utf8.Valid(data) {
		i := 0
		for i < len(data) {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		return nil, fmt.Errorf("invalid UTF-8 at offset %d", i)
	}
	return &scanner{data: data}, nil
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", s.pos, fmt.Sprintf(format, args...))
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// end checks nothing but white space follows.
func (s *scanner) end() error {
	s.ws()
	if s.pos != len(s.data) {
		return s.errorf("unexpected data after the top-level value")
	}
	return nil
}

// peek returns the next non-space byte, 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

// str reads a string token and returns its bounds (quotes included) and whether it holds an
// escape sequence.
func (s *scanner) str() (start, end int, escaped bool, err error) {
	start = s.pos
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return 0, 0, false, s.errorf("expected a string")
	}
	i := s.pos + 1
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return start, s.pos, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(s.data) {
				s.pos = i
				return 0, 0, false, s.errorf("unterminated string")
			}
			switch s.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s.data) {
					s.pos = i
					return 0, 0, false, s.errorf("short \\u escape")
				}
				for _, h := range s.data[i+2 : i+6] {
					if !isHex(h) {
						s.pos = i
						return 0, 0, false, s.errorf("bad \\u escape")
					}
				}
				i += 6
			default:
				s.pos = i
				return 0, 0, false, s.errorf("bad escape \\%c", s.data[i+1])
			}
		case c < 0x20:
			s.pos = i
			return 0, 0, false, s.errorf("control character in a string")
		default:
			i++
		}
	}
	s.pos = i
	return 0, 0, false, s.errorf("unterminated string")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unquote decodes a string token checked by str.
func unquote(tok []byte, escaped bool) string {
	if !escaped {
		return string(tok[1 : len(tok)-1])
	}
	var v string
	if err := json.Unmarshal(tok, &v); err != nil {
		// Unreachable: str accepted the token and the document is valid UTF-8.
		return string(tok[1 : len(tok)-1])
	}
	return v
}

// number reads a number token, checking the JSON grammar.
func (s *scanner) number() error {
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = skipDigits(d, i)
	default:
		return s.errorf("malformed number")
	}
	if i < len(d) && d[i] == '.' {
		j := skipDigits(d, i+1)
		if j == i+1 {
			s.pos = j
			return s.errorf("malformed number")
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := skipDigits(d, i)
		if j == i {
			s.pos = j
			return s.errorf("malformed number")
		}
		i = j
	}
	s.pos = i
	return nil
}

// skipDigits returns the index of the first byte at or after i in d that is not a decimal digit.
func skipDigits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}

// object reads an object, calling member for each key with the scanner positioned at the value;
// member must consume the value. Duplicate keys are an error.
func (s *scanner) object(member func(key string) error) error {
	if s.peek() != '{' {
		return s.errorf("expected an object")
	}
	if s.depth >= MaxDepth {
		return s.errorf("nesting deeper than %d", MaxDepth)
	}
	s.depth++
	defer func() { s.depth-- }()
	for len(s.seen) <= s.depth {
		s.seen = append(s.seen, nil)
	}
	s.seen[s.depth] = s.seen[s.depth][:0]
	var seenMap map[string]bool
	s.pos++
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		start, end, esc, err := s.str()
		if err != nil {
			return err
		}
		key := s.key(s.data[start:end], esc)
		// Small objects: linear search; large ones: a map.
		if seenMap != nil {
			if seenMap[key] {
				s.pos = start
				return s.errorf("duplicate key %q", key)
			}
			seenMap[key] = true
		} else {
			seen := s.seen[s.depth]
			if slices.Contains(seen, key) {
				s.pos = start
				return s.errorf("duplicate key %q", key)
			}
			seen = append(seen, key)
			s.seen[s.depth] = seen
			if len(seen) > 16 {
				seenMap = make(map[string]bool, 64)
				for _, k := range seen {
					seenMap[k] = true
				}
			}
		}
		if s.peek() != ':' {
			return s.errorf("expected ':' after key %q", key)
		}
		s.pos++
		s.ws()
		if err := member(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("expected ',' or '}' after the value of %q", key)
		}
	}
}

// array reads an array, calling elem with the scanner positioned at each element.
func (s *scanner) array(elem func() error) error {
	if s.peek() != '[' {
		return s.errorf("expected an array")
	}
	if s.depth >= MaxDepth {
		return s.errorf("nesting deeper than %d", MaxDepth)
	}
	s.depth++
	defer func() { s.depth-- }()
	s.pos++
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.errorf("expected ',' or ']' in an array")
		}
	}
}

// value reads any value and returns it as canonical raw JSON. Scalars are sub-slices of the
// scanner's data; objects and arrays are rebuilt compact with sorted keys.
func (s *scanner) value() (json.RawMessage, error) {
	switch s.peek() {
	case '{', '[':
		return s.appendComposite(nil)
	}
	start, err := s.scalar()
	if err != nil {
		return nil, err
	}
	return json.RawMessage(s.data[start:s.pos:s.pos]), nil
}

// scalar reads a string, number or literal and returns where it started.
func (s *scanner) scalar() (int, error) {
	start := s.pos
	if s.pos >= len(s.data) {
		return 0, s.errorf("unexpected end of data")
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		if _, _, _, err := s.str(); err != nil {
			return 0, err
		}
	case c == '-' || '0' <= c && c <= '9':
		if err := s.number(); err != nil {
			return 0, err
		}
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
				s.pos += len(lit)
				return start, nil
			}
		}
		return 0, s.errorf("unexpected character %q", c)
	}
	return start, nil
}

type member struct {
	key string
	raw []byte
}

// appendComposite appends the canonical form of the object or array at the scanner to dst.
func (s *scanner) appendComposite(dst []byte) ([]byte, error) {
	if s.peek() == '[' {
		dst = append(dst, '[')
		first := true
		err := s.array(func() error {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			var err error
			dst, err = s.appendValue(dst)
			return err
		})
		return append(dst, ']'), err
	}
	var members []member
	err := s.object(func(key string) error {
		raw, err := s.appendValue(nil)
		members = append(members, member{key, raw})
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	dst = append(dst, '{')
	for i, m := range members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendQuoted(dst, m.key)
		dst = append(dst, ':')
		dst = append(dst, m.raw...)
	}
	return append(dst, '}'), nil
}

func (s *scanner) appendValue(dst []byte) ([]byte, error) {
	switch s.peek() {
	case '{', '[':
		return s.appendComposite(dst)
	}
	start, err := s.scalar()
	if err != nil {
		return dst, err
	}
	return append(dst, s.data[start:s.pos]...), nil
}

// appendQuoted appends s as a JSON string. Non-ASCII text is written as UTF-8; invalid UTF-8
// becomes U+FFFD.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || n != 1 {
				i += n
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, fmt.Sprintf(`\u%04x`, c)...)
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// writer produces indented JSON: one space per level, sorted keys, python's separators.
type writer struct {
	buf []byte
}

func (w *writer) newline(depth int) {
	w.buf = append(w.buf, '\n')
	for range depth {
		w.buf = append(w.buf, ' ')
	}
}

// object writes an object at depth whose members are keys (sorted here); value writes the value
// of one key at depth+1.
func (w *writer) object(depth int, keys []string, value func(key string) error) error {
	if len(keys) == 0 {
		w.buf = append(w.buf, '{', '}')
		return nil
	}
	slices.Sort(keys)
	w.buf = append(w.buf, '{')
	for i, k := range keys {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.newline(depth + 1)
		w.buf = appendQuoted(w.buf, k)
		w.buf = append(w.buf, ':', ' ')
		if err := value(k); err != nil {
			return fmt.Errorf("%q: %w", k, err)
		}
	}
	w.newline(depth)
	w.buf = append(w.buf, '}')
	return nil
}

// raw writes a raw JSON value at depth, checking it and indenting it.
func (w *writer) raw(depth int, raw []byte) error {
	if !utf8.Valid(raw) {
		return errors.New("invalid UTF-8")
	}
	s := scanner{data: raw}
	switch s.peek() {
	case 0:
		return errors.New("empty value")
	case '{', '[':
		sc := &scanner{data: raw}
		if err := w.scan(depth, sc); err != nil {
			return err
		}
		return sc.end()
	}
	// Scalars, the common case, without the allocations of the general path.
	start, err := s.scalar()
	if err != nil {
		return err
	}
	if err := s.end(); err != nil {
		return err
	}
	w.buf = append(w.buf, raw[start:s.pos]...)
	return nil
}

func (w *writer) scan(depth int, s *scanner) error {
	switch s.peek() {
	case '{':
		var members []member
		err := s.object(func(key string) error {
			start := s.pos
			err := s.skip()
			members = append(members, member{key, s.data[start:s.pos]})
			return err
		})
		if err != nil {
			return err
		}
		keys := make([]string, len(members))
		byKey := make(map[string][]byte, len(members))
		for i, m := range members {
			keys[i] = m.key
			byKey[m.key] = m.raw
		}
		return w.object(depth, keys, func(k string) error {
			sub := &scanner{data: byKey[k], depth: s.depth + 1}
			if err := w.scan(depth+1, sub); err != nil {
				return err
			}
			return sub.end()
		})
	case '[':
		var elems [][]byte
		err := s.array(func() error {
			start := s.pos
			err := s.skip()
			elems = append(elems, s.data[start:s.pos])
			return err
		})
		if err != nil {
			return err
		}
		if len(elems) == 0 {
			w.buf = append(w.buf, '[', ']')
			return nil
		}
		w.buf = append(w.buf, '[')
		for i, e := range elems {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.newline(depth + 1)
			sub := &scanner{data: e, depth: s.depth + 1}
			if err := w.scan(depth+1, sub); err != nil {
				return err
			}
			if err := sub.end(); err != nil {
				return err
			}
		}
		w.newline(depth)
		w.buf = append(w.buf, ']')
		return nil
	}
	start, err := s.scalar()
	if err != nil {
		return err
	}
	w.buf = append(w.buf, s.data[start:s.pos]...)
	return nil
}

// skip reads over one value, checking it.
func (s *scanner) skip() error {
	switch s.peek() {
	case '{':
		return s.object(func(string) error { return s.skip() })
	case '[':
		return s.array(s.skip)
	}
	_, err := s.scalar()
	return err
}
