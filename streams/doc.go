// Package streams is the SimpleStreams format model: index:1.0 and products:1.0 documents read
// and written losslessly, attribute inheritance, sstream-mirror's filters, --max/--keep version
// selection and catalogue path validation. It does no I/O.
//
// Reading is strict, because catalogues come from the network: invalid UTF-8, duplicate keys in
// any object, nesting deeper than MaxDepth and malformed JSON are errors, as is a document whose
// format is not the one asked for. Nothing else is lost: unknown keys at every level, _aliases
// and numbers exactly as spelled (never converted through float64) are kept as raw JSON and
// written back. Writing sorts keys and indents with one space, the layout of python's
// json.dumps(indent=1, sort_keys=True), with a trailing newline; non-ASCII text is written as
// UTF-8 rather than \u escapes, and strings and numbers keep their original spelling. For every
// document d that parses, Parse(Marshal(d)) equals d.
package streams
