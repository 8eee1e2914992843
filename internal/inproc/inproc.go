// Package inproc serves an http.Handler to an http.Client inside the process, without a socket,
// so that tests of HTTP clients (timeouts, stalls, slow bodies) can run in a testing/synctest
// bubble, where time is fake and advances only when every goroutine is blocked: a bubble cannot
// wait on a real socket, so httptest servers do not work there.
//
//	client := inproc.Client(handler)
//	src, err := httpstore.New(client, inproc.URL, httpstore.Options{StallTimeout: time.Minute})
//
// The handler runs in a goroutine of its own per request; the response is returned as soon as
// the handler writes its headers (WriteHeader, Write or Flush) or returns, and its body streams
// through a pipe as the handler writes it. Cancelling the request's context, or closing the
// body, cancels the context the handler sees and fails pending body reads, as the real transport
// does. Each request is a new "connection"; there is no keep-alive to reason about.
package inproc

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// URL is a base URL for Client's requests; any host works.
const URL = "http://inproc.test/"

// Client is an http.Client whose requests h serves.
func Client(h http.Handler) *http.Client {
	return &http.Client{Transport: Transport(h)}
}

// Transport is an http.RoundTripper whose requests h serves.
func Transport(h http.Handler) http.RoundTripper { return transport{h} }

type transport struct{ h http.Handler }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A request whose context is already done is not sent, as with the real transport (the
	// select below would otherwise pick the handler's answer or the cancellation at random).
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(req.Context())
	r := req.Clone(ctx)
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:1"
	r.Host = req.URL.Host
	if r.Body == nil {
		r.Body = http.NoBody
	}
	pr, pw := io.Pipe()
	w := &writer{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	// A cancelled request fails the reads of its body, as the real transport does. AfterFunc
	// starts no goroutine until then: nothing is left running once the body is closed.
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	go func() {
		defer func() {
			w.commit(http.StatusOK)
			pw.CloseWithError(ctx.Err()) // a handler that ends because the request was cancelled does not make a whole body
		}()
		t.h.ServeHTTP(w, r)
	}()
	select {
	case <-w.ready:
	case <-ctx.Done():
		cancel()
		stop()
		return nil, ctx.Err()
	}
	resp := &http.Response{
		Status:        strconv.Itoa(w.code) + " " + http.StatusText(w.code),
		StatusCode:    w.code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		ContentLength: -1,
		Request:       req,
	}
	if cl := w.sent.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			resp.ContentLength = n
		}
	}
	resp.Body = &body{pr: pr, cancel: cancel, left: resp.ContentLength}
	if req.Method == http.MethodHead {
		resp.Body.Close()
		resp.Body = http.NoBody
	}
	return resp, nil
}

// body is the response body: closing it ends the request, as hanging up does.
type body struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
	left   int64 // of the Content-Length; -1: none
}

// Read fails with io.ErrUnexpectedEOF when the body ends short of its Content-Length, as the
// real transport's does.
func (b *body) Read(p []byte) (int, error) {
	n, err := b.pr.Read(p)
	if b.left >= 0 {
		b.left -= int64(n)
		if err == io.EOF && b.left > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	return n, err
}

func (b *body) Close() error {
	b.cancel()
	b.pr.Close()
	return nil
}

// writer is the handler's http.ResponseWriter.
type writer struct {
	header http.Header
	pw     *io.PipeWriter

	once  sync.Once
	code  int
	sent  http.Header // header as it was when the response was committed
	ready chan struct{}
}

func (w *writer) Header() http.Header { return w.header }

func (w *writer) WriteHeader(code int) { w.commit(code) }

func (w *writer) commit(code int) {
	w.once.Do(func() {
		w.code, w.sent = code, w.header.Clone()
		close(w.ready)
	})
}

func (w *writer) Write(p []byte) (int, error) {
	w.commit(http.StatusOK)
	return w.pw.Write(p)
}

// Flush commits the headers; written bytes need no flushing (the pipe has no buffer).
func (w *writer) Flush() { w.commit(http.StatusOK) }
