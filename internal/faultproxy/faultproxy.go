// Package faultproxy is a reverse proxy for tests that sits in front of an HTTP server (an
// upstream mirror, an S3 server) and breaks some of the exchanges on purpose: connections reset
// mid-body, bodies cut short, flipped bytes (in responses, or in request bodies on their way to
// the server), 500 and 503 answers, S3 SlowDown errors, stalls and
// wrong Content-Length headers, answers lost after the server applied the request, and answers
// rewritten (a server that misbehaves in what it says rather than how).
//
// Which requests are broken is decided by a seeded pseudo-random draw over the request's method,
// path and query and how many times that same request was seen before, so a run is reproducible
// even when many requests are in flight at once.
package faultproxy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	gosync "sync"
	"sync/atomic"
	"time"
)

// Kind names a fault.
type Kind string

// The faults the proxy injects.
const (
	// Reset forwards part of the body, then resets the connection (TCP RST).
	Reset Kind = "reset"
	// Truncate forwards part of the body under the original Content-Length, then closes the
	// connection cleanly.
	Truncate Kind = "truncate"
	// Flip forwards the whole body with one byte inverted.
	Flip Kind = "flip"
	// FlipRequest forwards the request's body to the server with one byte inverted (a middlebox
	// corrupting an upload), and the answer untouched. Requests without a body are forwarded
	// as they are.
	FlipRequest Kind = "flip-request"
	// Status500 answers 500 Internal Server Error without contacting the server.
	Status500 Kind = "500"
	// Status503 answers 503 Service Unavailable without contacting the server.
	Status503 Kind = "503"
	// SlowDown answers 503 with an S3 SlowDown error document without contacting the server.
	SlowDown Kind = "slowdown"
	// Stall forwards part of the body, then sends nothing for Fault.Stall (or until the client
	// hangs up), then forwards the rest.
	Stall Kind = "stall"
	// WrongLength declares a Content-Length of half the body and sends only that much, so the
	// response looks complete but is short.
	WrongLength Kind = "wrong-length"
	// LoseAnswer forwards the request, lets the server apply it and reads its whole answer, then
	// closes the client's connection without sending a byte of it: a request that took effect
	// whose answer was lost on the way (the client's retry then meets its own effect).
	LoseAnswer Kind = "lose-answer"
	// Rewrite forwards the exchange and hands the client the answer's body as Fault.Rewrite
	// returns it (with its Content-Length set to match).
	Rewrite Kind = "rewrite"
)

// AtStart, as Fault.At, strikes before the first byte of the body.
const AtStart = -1

// DefaultStall is how long a Stall fault lasts when Fault.Stall is zero: long enough that only a
// client giving up ends it in a test.
const DefaultStall = time.Minute

// Fault says which fault to inject and into which requests.
type Fault struct {
	Kind Kind
	// Rate is the probability, from 0 to 1, that a matching request gets this fault.
	Rate float64
	// Methods, when set, limits the fault to these request methods.
	Methods []string
	// Path, when set, limits the fault to requests whose path and query (URL.RequestURI, as
	// sent by the client) match.
	Path *regexp.Regexp
	// Filter, when set, limits the fault to requests for which it returns true.
	Filter func(*http.Request) bool
	// At is the body offset where Reset, Truncate, Flip, FlipRequest and Stall strike: 0 picks
	// one pseudo-randomly within the body (the request's, for FlipRequest), AtStart strikes
	// before its first byte.
	At int64
	// Stall is how long a Stall fault sends nothing (0: DefaultStall). The stall ends early
	// when the client hangs up.
	Stall time.Duration
	// Max, when positive, is the most times this fault is injected.
	Max int64
	// Rewrite gives the body a Rewrite fault sends to the client, from the request and the
	// server's answer (its status and whole body).
	Rewrite func(r *http.Request, status int, body []byte) []byte
}

func (f *Fault) matches(r *http.Request) bool {
	if len(f.Methods) > 0 && !slices.Contains(f.Methods, r.Method) {
		return false
	}
	if f.Path != nil && !f.Path.MatchString(r.URL.RequestURI()) {
		return false
	}
	return f.Filter == nil || f.Filter(r)
}

// Options configures a Proxy.
type Options struct {
	// Seed makes the pseudo-random draws reproducible.
	Seed uint64
	// Faults are considered in order; a request gets at most one.
	Faults []Fault
	// Key names a request for the pseudo-random draw; requests with the same key are told apart
	// by how many came before. Nil: the method, path and query. Tests give one that drops parts
	// that differ between runs (an S3 uploadId) so that every run draws the same faults.
	Key func(*http.Request) string
	// Transport forwards requests (nil: a fresh http.Transport without compression).
	Transport http.RoundTripper
}

// Stats counts what the proxy saw and did.
type Stats struct {
	// Requests is the number of requests received.
	Requests int64
	// BytesOut is the number of response body bytes written to clients.
	BytesOut int64
	// BytesIn is the number of request body bytes forwarded to the server.
	BytesIn int64
	// RequestFlips counts the request bodies forwarded with a byte inverted (FlipRequest faults
	// that struck a byte).
	RequestFlips int64
	// Faults counts the faults injected, by kind.
	Faults map[Kind]int64
	// StallsOutlasted counts stalls that ran their full length with the client still waiting.
	StallsOutlasted int64
	// StallWaits are how long the client waited in each stall before hanging up or the stall
	// ended.
	StallWaits []time.Duration
}

// Proxy is an http.Handler forwarding to one server and injecting faults. It is safe for
// concurrent use.
type Proxy struct {
	target *url.URL
	opts   Options
	rt     http.RoundTripper

	requests, bytesOut, bytesIn, requestFlips atomic.Int64

	mu       gosync.Mutex
	seen     map[string]uint64 // method and URI → requests so far
	injected []int64           // by index in opts.Faults
	byKind   map[Kind]int64
	outlast  int64
	waits    []time.Duration
}

// New returns a Proxy forwarding to target (scheme and host; its path is prefixed to every
// request's).
func New(target string, opts Options) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q: want an http(s) URL with a host", target)
	}
	for i, f := range opts.Faults {
		switch f.Kind {
		case Reset, Truncate, Flip, FlipRequest, Status500, Status503, SlowDown, Stall, WrongLength, LoseAnswer:
		case Rewrite:
			if f.Rewrite == nil {
				return nil, fmt.Errorf("faultproxy: fault %d: a rewrite without a Rewrite function", i)
			}
		default:
			return nil, fmt.Errorf("faultproxy: fault %d: unknown kind %q", i, f.Kind)
		}
		if f.Rate < 0 || f.Rate > 1 {
			return nil, fmt.Errorf("faultproxy: fault %d (%s): rate %v outside [0, 1]", i, f.Kind, f.Rate)
		}
	}
	rt := opts.Transport
	if rt == nil {
		rt = &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}
	}
	return &Proxy{
		target:   u,
		opts:     opts,
		rt:       rt,
		seen:     map[string]uint64{},
		injected: make([]int64, len(opts.Faults)),
		byKind:   map[Kind]int64{},
	}, nil
}

// Stats returns a copy of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{
		Requests:        p.requests.Load(),
		BytesOut:        p.bytesOut.Load(),
		BytesIn:         p.bytesIn.Load(),
		RequestFlips:    p.requestFlips.Load(),
		Faults:          map[Kind]int64{},
		StallsOutlasted: p.outlast,
		StallWaits:      slices.Clone(p.waits),
	}
	for k, n := range p.byKind {
		s.Faults[k] = n
	}
	return s
}

// draw returns a reproducible pseudo-random source for the n-th sighting of a request.
func (p *Proxy) draw(key string, n uint64) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(key))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], n)
	h.Write(b[:])
	return rand.New(rand.NewPCG(p.opts.Seed, h.Sum64()))
}

// choose picks the fault for r, if any, and counts it.
func (p *Proxy) choose(r *http.Request) (*Fault, *rand.Rand) {
	key := r.Method + " " + r.URL.RequestURI()
	if p.opts.Key != nil {
		key = p.opts.Key(r)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.seen[key]
	p.seen[key] = n + 1
	rng := p.draw(key, n)
	u := rng.Float64()
	var lo float64
	for i := range p.opts.Faults {
		f := &p.opts.Faults[i]
		if !f.matches(r) || f.Max > 0 && p.injected[i] >= f.Max {
			continue
		}
		if u >= lo && u < lo+f.Rate {
			p.injected[i]++
			p.byKind[f.Kind]++
			return f, rng
		}
		lo += f.Rate
	}
	return nil, rng
}

var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect",
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	f, rng := p.choose(r)
	if f != nil {
		switch f.Kind {
		case Status500, Status503, SlowDown:
			p.answerError(w, r, f.Kind)
			return
		}
	}
	resp, err := p.rt.RoundTrip(p.forward(r, f, rng))
	if err != nil {
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	switch {
	case f != nil && f.Kind == LoseAnswer:
		io.Copy(io.Discard, resp.Body)
		p.drop(w)
	case f != nil && f.Kind == Rewrite:
		p.rewrite(w, r, resp, f)
	case r.Method == http.MethodHead:
		w.WriteHeader(resp.StatusCode)
	default:
		p.answer(w, r, resp, f, rng)
	}
}

// forward is the request sent on to the server: r's, without its hop-by-hop headers, its body
// counted and, for a FlipRequest fault, broken.
func (p *Proxy) forward(r *http.Request, f *Fault, rng *rand.Rand) *http.Request {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.URL.Path = p.target.Path + r.URL.Path
	if r.URL.RawPath != "" {
		out.URL.RawPath = p.target.EscapedPath() + r.URL.RawPath
	}
	out.Host = r.Host // signatures (S3) cover the Host header the client sent
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	if r.ContentLength == 0 {
		out.Body = nil
		return out
	}
	out.Body = &countReader{r: r.Body, n: &p.bytesIn}
	if f != nil && f.Kind == FlipRequest {
		out.Body = &flipReader{r: out.Body, at: strikeAt(f, rng, r.ContentLength), flipped: &p.requestFlips}
	}
	return out
}

// strikeAt is the body offset where f strikes in a body of size bytes (-1: unknown): f.At, or
// one picked within the body (its first 64 KiB when its size is unknown), never before its start.
func strikeAt(f *Fault, rng *rand.Rand, size int64) int64 {
	at := f.At
	if at == 0 {
		limit := size
		if limit <= 0 {
			limit = 64 << 10
		}
		at = rng.Int64N(limit)
	}
	return max(at, 0)
}

// rewrite sends the body f.Rewrite makes of the server's whole answer.
func (p *Proxy) rewrite(w http.ResponseWriter, r *http.Request, resp *http.Response, f *Fault) {
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.hangUp(w, true)
		return
	}
	body = f.Rewrite(r, resp.StatusCode, body)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		p.write(w, body)
	}
}

// answer passes the server's answer to a request other than HEAD on to the client, with f's
// fault (nil: none) struck into its body.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, resp *http.Response, f *Fault, rng *rand.Rand) {
	size := resp.ContentLength
	if f != nil && f.Kind == WrongLength && size > 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size/2, 10))
		w.WriteHeader(resp.StatusCode)
		p.copy(w, resp.Body, size/2)
		return
	}
	if size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(resp.StatusCode)
	if f == nil {
		p.copy(w, resp.Body, -1)
		return
	}
	at := strikeAt(f, rng, size)
	if size >= 0 {
		at = min(at, size)
	}
	switch f.Kind {
	case Reset, Truncate:
		p.copy(w, resp.Body, at)
		p.hangUp(w, f.Kind == Reset)
	case Flip:
		p.copy(w, resp.Body, at)
		var b [1]byte
		if n, _ := io.ReadFull(resp.Body, b[:]); n == 1 {
			b[0] ^= 0xff
			p.write(w, b[:])
		}
		p.copy(w, resp.Body, -1)
	case Stall:
		p.copy(w, resp.Body, at)
		p.stall(w, r, f.Stall)
		p.copy(w, resp.Body, -1)
	default:
		p.copy(w, resp.Body, -1)
	}
}

// answerError answers without contacting the server, after reading the request body as a server
// would (so the client sees the answer rather than a broken pipe).
func (p *Proxy) answerError(w http.ResponseWriter, r *http.Request, k Kind) {
	io.Copy(io.Discard, r.Body)
	switch k {
	case Status500:
		http.Error(w, "faultproxy: injected internal error", http.StatusInternalServerError)
	case Status503:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "faultproxy: injected unavailability", http.StatusServiceUnavailable)
	case SlowDown:
		body := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
			`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>` +
			`<Resource>` + xmlEscape(r.URL.Path) + `</Resource><RequestId>faultproxy</RequestId></Error>`
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusServiceUnavailable)
		if r.Method != http.MethodHead {
			io.WriteString(w, body)
		}
	}
}

func xmlEscape(s string) string {
	var b []byte
	for _, c := range []byte(s) {
		switch c {
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '&':
			b = append(b, "&amp;"...)
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// copy forwards n bytes of body (n < 0: all of it), counting what reaches the client.
func (p *Proxy) copy(w http.ResponseWriter, body io.Reader, n int64) {
	if n == 0 {
		return
	}
	if n > 0 {
		body = io.LimitReader(body, n)
	}
	buf := make([]byte, 32<<10)
	for {
		m, err := body.Read(buf)
		if m > 0 && !p.write(w, buf[:m]) {
			return
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) write(w http.ResponseWriter, b []byte) bool {
	n, err := w.Write(b)
	p.bytesOut.Add(int64(n))
	return err == nil
}

// hangUp flushes what was written and closes the client connection, with a reset when rst.
func (p *Proxy) hangUp(w http.ResponseWriter, rst bool) {
	if err := http.NewResponseController(w).Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	flushBuffered(buf)
	if tcp, ok := conn.(*net.TCPConn); ok && rst {
		tcp.SetLinger(0)
	}
	conn.Close()
}

// drop closes the client connection with a reset before anything of the answer was sent.
func (p *Proxy) drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	conn.Close()
}

func flushBuffered(buf *bufio.ReadWriter) {
	if buf != nil {
		buf.Flush()
	}
}

// stall sends nothing for d (0: DefaultStall) or until the client hangs up.
func (p *Proxy) stall(w http.ResponseWriter, r *http.Request, d time.Duration) {
	if d <= 0 {
		d = DefaultStall
	}
	http.NewResponseController(w).Flush()
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	outlasted := false
	select {
	case <-r.Context().Done():
	case <-t.C:
		outlasted = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waits = append(p.waits, time.Since(start))
	if outlasted {
		p.outlast++
	}
}

// flipReader inverts the byte at offset at of what it reads.
type flipReader struct {
	r       io.ReadCloser
	at, off int64
	flipped *atomic.Int64
}

func (f *flipReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if f.at >= f.off && f.at < f.off+int64(n) {
		b[f.at-f.off] ^= 0xff
		f.flipped.Add(1)
	}
	f.off += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.r.Close() }

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countReader) Close() error {
	if rc, ok := c.r.(io.Closer); ok {
		return rc.Close()
	}
	return nil
}
