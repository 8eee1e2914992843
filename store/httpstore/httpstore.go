// Package httpstore is a store.Source (read only: no writes, no listing) over an HTTP(S) mirror
// root such as https://images.maas.io/ephemeral-v3/stable/.
//
// Open returns a reader that resumes an interrupted body by itself (a Range request from the
// byte where it stopped), so a hashing reader wrapped around it sees one continuous stream.
// Extra mirrors are tried, in order, when the primary answers 404 or 410.
//
// A base URL may carry credentials (http://user:password@host/path/): they are sent as HTTP
// basic authentication to that base and appear in no error and no Describe. StripUserInfo does
// the same for callers that print a URL they were given.
package httpstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/retry"
)

// Default values for Options fields left at zero.
const (
	DefaultRetries      = 5
	DefaultStallTimeout = 60 * time.Second
	DefaultUserAgent    = "ssmirror"
)

// Options configures a Store.
type Options struct {
	// Mirrors are extra base URLs tried, in order, when the primary answers 404 or 410.
	Mirrors []string
	// Retries is how many times an interrupted body is resumed in a row without the body making
	// progress; 0 means DefaultRetries, a negative value disables resuming.
	Retries int
	// StallTimeout is how long a body may deliver no bytes (or a request wait for its response
	// headers) before it is treated as interrupted and resumed; 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// UserAgent is sent with every request; "" means DefaultUserAgent.
	UserAgent string
}

// Store reads objects from an HTTP(S) mirror root. It is safe for concurrent use.
type Store struct {
	client *http.Client
	bases  []base // primary first, then mirrors
	opts   Options
	// backoff is the pause before resume attempt n (1-based): defaultBackoff; tests shorten it.
	backoff func(attempt int) time.Duration
}

var (
	_ store.Source      = (*Store)(nil)
	_ store.Describer   = (*Store)(nil)
	_ store.RangeOpener = (*Store)(nil)
)

// New returns a Store reading from base (an http or https URL; a trailing "/" is added when
// missing) with client (nil: DefaultClient()).
func New(client *http.Client, base string, opts Options) (*Store, error) {
	if client == nil {
		client = DefaultClient()
	}
	if opts.Retries == 0 {
		opts.Retries = DefaultRetries
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	s := &Store{client: client, opts: opts, backoff: defaultBackoff}
	for _, raw := range append([]string{base}, opts.Mirrors...) {
		b, err := parseBase(raw)
		if err != nil {
			return nil, err
		}
		s.bases = append(s.bases, b)
	}
	return s, nil
}

// base is one mirror root: its URL without user info (every message shows this one) and the
// credentials taken out of it.
type base struct {
	url  *url.URL // path ends in "/"; User is nil
	auth *url.Userinfo
}

func parseBase(raw string) (base, error) {
	shown := StripUserInfo(raw)
	u, err := url.Parse(raw)
	if err != nil {
		if shown != raw {
			// The parser's message may quote the user info.
			return base{}, fmt.Errorf("http source %q: not a valid URL", shown)
		}
		return base{}, fmt.Errorf("http source %q: %w", shown, errors.Unwrap(err))
	}
	b := base{url: u, auth: u.User}
	u.User = nil
	if u.Scheme != "http" && u.Scheme != "https" {
		return base{}, fmt.Errorf("http source %q: scheme must be http or https", shown)
	}
	if u.Host == "" {
		return base{}, fmt.Errorf("http source %q: no host", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return base{}, fmt.Errorf("http source %q: query and fragment are not supported", shown)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	return b, nil
}

// StripUserInfo returns raw with the user info of its authority removed
// ("https://user:pw@host/p" → "https://host/p"), for messages. It works on strings that do not
// parse as URLs too: then everything between "://" and the last "@" before any "?" or "#" goes.
// A string without "://" is returned unchanged.
func StripUserInfo(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	if u, err := url.Parse(raw); err == nil {
		if u.User == nil {
			return raw
		}
		u.User = nil
		return u.String()
	}
	end := strings.IndexAny(rest, "?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return scheme + "://" + rest[at+1:]
	}
	return raw
}

// DefaultClient returns an HTTP client for large downloads: proxies from the environment
// (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), timeouts on dialling, TLS handshakes and waiting for
// response headers, no overall timeout (bodies are hundreds of MB), and redirects followed only
// to http and https URLs.
func DefaultClient() *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
	}
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("refusing redirect to %s: only http and https are followed", StripUserInfo(req.URL.String()))
	}
	if len(via) >= 10 {
		return fmt.Errorf("stopped after %d redirects", len(via))
	}
	return nil
}

// Describe returns the primary base URL, without its user info.
func (s *Store) Describe() string { return s.bases[0].url.String() }

// objectURL joins base and key, escaping each segment of key (":" survives unescaped).
func objectURL(base *url.URL, key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	u := *base
	u.Path = base.Path + key
	u.RawPath = base.EscapedPath() + strings.Join(segs, "/")
	return u.String()
}

func (s *Store) newRequest(ctx context.Context, method, rawURL string, auth *url.Userinfo) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, err
	}
	if auth != nil {
		// As a header, not in the URL: net/http's errors quote the request URL.
		pass, _ := auth.Password()
		req.SetBasicAuth(auth.Username(), pass)
	}
	req.Header.Set("User-Agent", s.opts.UserAgent)
	// Ask for the bytes as stored: a transparently decompressed body has neither the catalogue's
	// size nor usable byte ranges.
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

func isNotFound(code int) bool { return code == http.StatusNotFound || code == http.StatusGone }

// Stat sends a HEAD request (a GET whose body is closed at once when the server refuses HEAD).
// Size is -1 when the server sends no Content-Length; SHA256 is always ""; ETag is the server's
// ETag header as sent ("" without one).
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	if err := store.ValidKey(key); err != nil {
		return store.Info{}, &store.Error{Op: "stat", Key: key, Err: err}
	}
	var lastURL string
	for _, base := range s.bases {
		u := objectURL(base.url, key)
		lastURL = u
		resp, err := s.statOne(ctx, http.MethodHead, u, base.auth)
		if err == nil && (resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotImplemented) {
			resp, err = s.statOne(ctx, http.MethodGet, u, base.auth)
		}
		if err != nil {
			return store.Info{}, &store.Error{Op: "stat", Key: key, Err: err}
		}
		if isNotFound(resp.StatusCode) {
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return store.Info{}, &store.Error{Op: "stat", Key: key, Err: fmt.Errorf("%s answered %s", u, resp.Status)}
		}
		info := store.Info{Key: key, Size: resp.ContentLength, ETag: resp.Header.Get("ETag")}
		if lm := resp.Header.Get("Last-Modified"); lm != "" {
			if t, err := http.ParseTime(lm); err == nil {
				info.ModTime = t
			}
		}
		return info, nil
	}
	return store.Info{}, &store.Error{Op: "stat", Key: key, Err: fmt.Errorf("%w (%s answered 404)", store.ErrNotExist, lastURL)}
}

func (s *Store) statOne(ctx context.Context, method, u string, auth *url.Userinfo) (*http.Response, error) {
	req, err := s.newRequest(ctx, method, u, auth)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	// Never read the body: for a GET it may be hundreds of MB.
	resp.Body.Close()
	return resp, nil
}

// Open reads key from offset on. The reader resumes an interrupted, short or stalled body with
// a Range request, up to Options.Retries times in a row without progress.
func (s *Store) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if err := store.ValidKey(key); err != nil {
		return nil, &store.Error{Op: "open", Key: key, Err: err}
	}
	if offset < 0 {
		return nil, &store.Error{Op: "open", Key: key, Err: fmt.Errorf("negative offset %d", offset)}
	}
	rc, err := s.open(ctx, key, offset, -1)
	if err != nil {
		return nil, store.NewError("open", key, err)
	}
	return rc, nil
}

// OpenRange reads length bytes of key from offset on with a bounded Range request. The reader
// yields exactly length bytes: it resumes an interrupted body like Open's (from the byte where
// it stopped to the end of the range), and fails when the object is shorter than the range.
func (s *Store) OpenRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := store.ValidKey(key); err != nil {
		return nil, &store.Error{Op: "open", Key: key, Err: err}
	}
	if offset < 0 || length < 0 {
		return nil, &store.Error{Op: "open", Key: key, Err: fmt.Errorf("bad range: %d bytes from byte %d", length, offset)}
	}
	if length == 0 {
		return http.NoBody, nil
	}
	rc, err := s.open(ctx, key, offset, offset+length)
	if err != nil {
		return nil, store.NewError("open", key, err)
	}
	return rc, nil
}

// open starts a body from offset up to end (exclusive; -1: the end of the object), trying each
// mirror in turn while the object is not found.
func (s *Store) open(ctx context.Context, key string, offset, end int64) (io.ReadCloser, error) {
	b := &body{ctx: ctx, s: s, key: key, pos: offset, end: end, total: -1}
	var lastURL string
	for _, base := range s.bases {
		b.url, b.auth = objectURL(base.url, key), base.auth
		lastURL = b.url
		err := b.request(true)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w (%s answered 404)", store.ErrNotExist, lastURL)
}

// permanentError is a failure that resuming again would not cure (the object vanished or
// changed).
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

var (
	errNotFound = errors.New("not found")
	errStalled  = errors.New("no data received within the stall timeout")
)

// body is the reader Open returns: one HTTP response at a time, replaced by a Range request
// from pos when it breaks.
// Size is the bytes the body will return when the server said (store.Sizer), -1 otherwise.
func (b *body) Size() int64 {
	switch {
	case b.end >= 0:
		return b.end - b.pos
	case b.known && b.total >= 0:
		return b.total - b.pos
	}
	return -1
}

type body struct {
	ctx   context.Context
	s     *Store
	key   string
	url   string        // without user info
	auth  *url.Userinfo // credentials of url's base
	pos   int64         // absolute offset of the next byte to return
	end   int64         // absolute offset where a ranged body stops (exclusive), -1 for the object's end
	total int64         // size of the whole object, -1 while unknown
	etag  string
	known bool // total and etag were taken from a first accepted response

	resp   *http.Response
	cancel context.CancelCauseFunc // cancels the current request
	timer  *time.Timer             // stall timer of the current request
	fails  int                     // resume attempts since the last byte received
	why    error                   // why the last response or attempt failed
	closed bool
}

// request starts a GET from b.pos. first says whether it is Open's request (a 404 is then
// reported as errNotFound so that Open tries the next mirror).
func (b *body) request(first bool) error {
	ctx, cancel := context.WithCancelCause(b.ctx)
	timer := time.AfterFunc(b.s.opts.StallTimeout, func() { cancel(errStalled) })
	req, err := b.s.newRequest(ctx, http.MethodGet, b.url, b.auth)
	if err != nil {
		timer.Stop()
		cancel(nil)
		return err
	}
	switch {
	case b.end >= 0:
		req.Header.Set("Range", "bytes="+strconv.FormatInt(b.pos, 10)+"-"+strconv.FormatInt(b.end-1, 10))
	case b.pos > 0:
		req.Header.Set("Range", "bytes="+strconv.FormatInt(b.pos, 10)+"-")
	}
	resp, err := b.s.client.Do(req)
	if err != nil {
		timer.Stop()
		cancel(nil)
		if context.Cause(ctx) == errStalled {
			err = fmt.Errorf("%w: %w", errStalled, err)
		}
		return fmt.Errorf("get %s: %w", b.url, err)
	}
	// The stall timer keeps running while accept may skip bytes of a body that ignored Range.
	timer.Reset(b.s.opts.StallTimeout)
	err = b.accept(resp, first)
	timer.Stop()
	if err != nil {
		resp.Body.Close()
		cancel(nil)
		return err
	}
	b.resp, b.cancel, b.timer = resp, cancel, timer
	return nil
}

// accept checks a response to a request from b.pos and, where the server ignored the Range
// header, skips the bytes before b.pos.
func (b *body) accept(resp *http.Response, first bool) error {
	switch {
	case first && isNotFound(resp.StatusCode):
		return errNotFound
	case resp.StatusCode == http.StatusPartialContent && (b.pos > 0 || b.end >= 0):
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fmt.Errorf("get %s from byte %d: %w", b.url, b.pos, err)
		}
		if start != b.pos {
			return fmt.Errorf("get %s from byte %d: server sent a range starting at byte %d", b.url, b.pos, start)
		}
		if err := b.sameObject(resp, total); err != nil {
			return err
		}
		return b.rangeFits(total)
	case resp.StatusCode == http.StatusOK:
		if err := b.sameObject(resp, resp.ContentLength); err != nil {
			return err
		}
		if err := b.rangeFits(resp.ContentLength); err != nil {
			return err
		}
		if b.pos > 0 {
			// The server ignored Range: read up to where we are.
			n, err := io.CopyN(io.Discard, resp.Body, b.pos)
			if err != nil {
				return fmt.Errorf("get %s: skipping to byte %d: read %d bytes: %w", b.url, b.pos, n, err)
			}
		}
		return nil
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && first && b.end < 0:
		// Asking for the empty tail of an object is not an error.
		if _, total, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil && total == b.pos {
			b.known, b.total = true, total
			resp.Body.Close()
			resp.Body = http.NoBody
			return nil
		}
		return fmt.Errorf("get %s from byte %d: %s", b.url, b.pos, resp.Status)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return permanentError{fmt.Errorf("get %s: %s: %w", b.url, resp.Status, fs.ErrPermission)}
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return permanentError{fmt.Errorf("get %s: %s", b.url, resp.Status)}
	default:
		return fmt.Errorf("get %s: %s", b.url, resp.Status)
	}
}

// sameObject records the object's size and ETag from the first response and, on a resumed
// one, checks that they did not change.
func (b *body) sameObject(resp *http.Response, total int64) error {
	etag := resp.Header.Get("ETag")
	if strings.HasPrefix(etag, "W/") {
		etag = ""
	}
	if !b.known {
		b.known = true
		b.total, b.etag = total, etag
		return nil
	}
	if b.total >= 0 && total >= 0 && total != b.total {
		return permanentError{fmt.Errorf("get %s: object changed while reading: size %d, was %d", b.url, total, b.total)}
	}
	if b.etag != "" && etag != "" && etag != b.etag {
		return permanentError{fmt.Errorf("get %s: object changed while reading: ETag %s, was %s", b.url, etag, b.etag)}
	}
	if b.total < 0 {
		b.total = total
	}
	return nil
}

// rangeFits fails, for good, when a ranged body asks for bytes past the end of an object of
// total bytes (-1: unknown).
func (b *body) rangeFits(total int64) error {
	if b.end >= 0 && total >= 0 && total < b.end {
		return permanentError{fmt.Errorf("get %s: the object is %d bytes, shorter than the range up to byte %d: %w", b.url, total, b.end, io.ErrUnexpectedEOF)}
	}
	return nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*": -1) or "bytes */TOTAL"
// (start -1).
func parseContentRange(v string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total < 0 {
			return 0, 0, fmt.Errorf("bad Content-Range %q", v)
		}
	}
	if rng == "*" {
		return -1, total, nil
	}
	first, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil || start < 0 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	return start, total, nil
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, fmt.Errorf("read %s: reader is closed", b.key)
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if b.end >= 0 {
			if b.pos >= b.end {
				return 0, io.EOF
			}
			if rest := b.end - b.pos; int64(len(p)) > rest {
				p = p[:rest]
			}
		}
		if b.resp == nil {
			if err := b.resume(); err != nil {
				return 0, err
			}
			continue
		}
		b.timer.Reset(b.s.opts.StallTimeout)
		n, err := b.resp.Body.Read(p)
		b.timer.Stop()
		b.pos += int64(n)
		if n > 0 {
			b.fails = 0
		}
		if err == nil {
			return n, nil
		}
		if err == io.EOF {
			if b.end >= 0 && b.pos >= b.end {
				return n, io.EOF
			}
			if b.end < 0 && (b.total < 0 || b.pos >= b.total) {
				if b.total >= 0 && b.pos > b.total {
					return n, fmt.Errorf("read %s: %s sent %d bytes, more than its size %d", b.key, b.url, b.pos, b.total)
				}
				return n, io.EOF
			}
			err = io.ErrUnexpectedEOF
		}
		if ctxErr := b.ctx.Err(); ctxErr != nil {
			return n, fmt.Errorf("read %s: %w", b.key, context.Cause(b.ctx))
		}
		stalled := context.Cause(b.resp.Request.Context()) == errStalled
		b.drop()
		if stalled {
			err = fmt.Errorf("%w: %w", errStalled, err)
		}
		b.why = err
		if n > 0 {
			return n, nil
		}
	}
}

// resume re-requests the object from b.pos after a pause, giving up after Options.Retries
// attempts in a row without progress.
func (b *body) resume() error {
	for {
		if b.s.opts.Retries < 0 || b.fails >= b.s.opts.Retries {
			return fmt.Errorf("read %s: giving up at byte %d after %d attempts to resume: %w", b.key, b.pos, b.fails, b.why)
		}
		b.fails++
		if cause := retry.Sleep(b.ctx, b.s.backoff(b.fails)); cause != nil {
			return fmt.Errorf("read %s: %w", b.key, cause)
		}
		err := b.request(false)
		if err == nil {
			return nil
		}
		if b.ctx.Err() != nil {
			return fmt.Errorf("read %s: %w", b.key, context.Cause(b.ctx))
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return fmt.Errorf("read %s: resuming at byte %d: %w", b.key, b.pos, perm.error)
		}
		b.why = err
	}
}

func (b *body) drop() {
	if b.resp != nil {
		b.timer.Stop()
		b.cancel(nil)
		b.resp.Body.Close()
		b.resp = nil
	}
}

func (b *body) Close() error {
	b.drop()
	b.closed = true
	return nil
}

// defaultBackoff waits about 0.25s, 0.5s, 1s, … (at most 8s) before resume attempt n+1,
// jittered by ±25%.
var defaultBackoff = retry.Exponential(250*time.Millisecond, 8*time.Second)
