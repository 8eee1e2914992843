// Package streams is the SimpleStreams format model: index:1.0 and products:1.0 documents read
// and written losslessly, attribute inheritance, sstream-mirror's filters, --max/--keep version
// selection and catalogue path validation. It does no I/O.
package streams
