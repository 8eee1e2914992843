package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Index is an index:1.0 document. Unknown top-level keys are kept in Extra and written back.
type Index struct {
	Format  string
	Updated string
	Index   map[string]*IndexEntry // by content_id
	Extra   map[string]json.RawMessage
}

// IndexEntry is one entry of an index. Unknown keys (clouds, cloudname, …) are kept in Extra.
type IndexEntry struct {
	Path     string
	Format   string
	Datatype string
	Updated  string
	Products []string
	Extra    map[string]json.RawMessage
}

// ParseIndex parses an index:1.0 document (unsigned JSON). Like ParseProducts it rejects invalid
// UTF-8, duplicate keys and deep nesting; "format", "updated", and in entries "path", "format",
// "datatype", "updated" must be strings and "products" an array of strings. A missing key reads
// as "" (nil for products); Marshal then leaves it out.
func ParseIndex(data []byte) (*Index, error) {
	s, err := newScanner(bytes.Clone(data))
	if err != nil {
		return nil, fmt.Errorf("index document: %w", err)
	}
	ix := &Index{Index: map[string]*IndexEntry{}, Extra: map[string]json.RawMessage{}}
	err = s.object(func(key string) error {
		switch key {
		case "format":
			return s.stringField(key, &ix.Format)
		case "updated":
			return s.stringField(key, &ix.Updated)
		case "index":
			return s.object(func(id string) error {
				e := &IndexEntry{Extra: map[string]json.RawMessage{}}
				ix.Index[id] = e
				if err := s.indexEntry(e); err != nil {
					return fmt.Errorf("index entry %q: %w", id, err)
				}
				return nil
			})
		}
		return s.attr(ix.Extra, key)
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, fmt.Errorf("index document: %w", err)
	}
	if ix.Format != FormatIndex {
		return nil, fmt.Errorf("index document: format %q, want %s", ix.Format, FormatIndex)
	}
	return ix, nil
}

func (s *scanner) stringField(key string, dst *string) error {
	if s.peek() != '"' {
		return s.errorf("%q is not a string", key)
	}
	start, end, esc, err := s.str()
	if err != nil {
		return fmt.Errorf("%q: %w", key, err)
	}
	*dst = unquote(s.data[start:end], esc)
	return nil
}

func (s *scanner) indexEntry(e *IndexEntry) error {
	return s.object(func(key string) error {
		switch key {
		case "path":
			return s.stringField(key, &e.Path)
		case "format":
			return s.stringField(key, &e.Format)
		case "datatype":
			return s.stringField(key, &e.Datatype)
		case "updated":
			return s.stringField(key, &e.Updated)
		case "products":
			e.Products = []string{}
			return s.array(func() error {
				var name string
				if err := s.stringField(key, &name); err != nil {
					return err
				}
				e.Products = append(e.Products, name)
				return nil
			})
		}
		return s.attr(e.Extra, key)
	})
}

// Marshal writes the index as indented JSON with sorted keys and a trailing newline (the same
// layout as Products.Marshal). Empty string fields and a nil Products list are left out; an Extra
// key that names a typed field is ignored.
func (ix *Index) Marshal() ([]byte, error) {
	w := &writer{}
	top := map[string]func() error{}
	for k, raw := range ix.Extra {
		top[k] = func() error { return w.raw(1, raw) }
	}
	setString(w, top, "format", ix.Format)
	setString(w, top, "updated", ix.Updated)
	top["index"] = func() error {
		return w.object(1, keysOf(ix.Index), func(id string) error {
			return w.indexEntry(2, ix.Index[id])
		})
	}
	err := w.object(0, keysOf(top), func(k string) error { return top[k]() })
	if err != nil {
		return nil, fmt.Errorf("writing index document: %w", err)
	}
	return append(w.buf, '\n'), nil
}

func setString(w *writer, fields map[string]func() error, key, value string) {
	if value == "" {
		delete(fields, key)
		return
	}
	fields[key] = func() error {
		w.buf = appendQuoted(w.buf, value)
		return nil
	}
}

func (w *writer) indexEntry(depth int, e *IndexEntry) error {
	if e == nil {
		return errors.New("nil entry")
	}
	fields := map[string]func() error{}
	for k, raw := range e.Extra {
		fields[k] = func() error { return w.raw(depth+1, raw) }
	}
	setString(w, fields, "path", e.Path)
	setString(w, fields, "format", e.Format)
	setString(w, fields, "datatype", e.Datatype)
	setString(w, fields, "updated", e.Updated)
	delete(fields, "products")
	if e.Products != nil {
		fields["products"] = func() error {
			if len(e.Products) == 0 {
				w.buf = append(w.buf, '[', ']')
				return nil
			}
			w.buf = append(w.buf, '[')
			for i, name := range e.Products {
				if i > 0 {
					w.buf = append(w.buf, ',')
				}
				w.newline(depth + 2)
				w.buf = appendQuoted(w.buf, name)
			}
			w.newline(depth + 1)
			w.buf = append(w.buf, ']')
			return nil
		}
	}
	return w.object(depth, keysOf(fields), func(k string) error { return fields[k]() })
}
