package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	gosync "sync"

	"github.com/ssmirror/ssmirror/store/httpstore"
)

// retryLog is an upstream transport that logs (at info, so -v shows it) each request that
// repeats one whose answer or body failed: the resumes and retries the HTTP source makes.
type retryLog struct {
	next http.RoundTripper
	log  *slog.Logger

	mu       gosync.Mutex
	failed   map[string]string // URL → why its last request failed
	attempts map[string]int
}

// withRetryLog returns client with its transport wrapped in a retryLog.
func withRetryLog(client *http.Client, log *slog.Logger) *http.Client {
	c := *client
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = &retryLog{next: next, log: log, failed: map[string]string{}, attempts: map[string]int{}}
	return &c
}

func (r *retryLog) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	u.User = nil
	key := u.String()
	r.mu.Lock()
	why, again := r.failed[key]
	delete(r.failed, key)
	if again {
		r.attempts[key]++
	}
	n := r.attempts[key]
	r.mu.Unlock()
	if again {
		attrs := []any{"url", httpstore.StripUserInfo(key), "retry", n, "after", why}
		if rg := req.Header.Get("Range"); rg != "" {
			attrs = append(attrs, "range", rg)
		}
		r.log.Info("retrying", attrs...)
	}
	resp, err := r.next.RoundTrip(req)
	switch {
	case err != nil:
		r.fail(key, err.Error())
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		r.fail(key, resp.Status)
	default:
		resp.Body = &watchedBody{ReadCloser: resp.Body, fail: func(err error) { r.fail(key, err.Error()) }}
	}
	return resp, err
}

func (r *retryLog) fail(key, why string) {
	r.mu.Lock()
	r.failed[key] = why
	r.mu.Unlock()
}

// watchedBody reports a body that breaks off (any read error but EOF).
type watchedBody struct {
	io.ReadCloser
	fail func(error)
	done bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && !b.done {
		b.done = true
		b.fail(fmt.Errorf("body: %w", err))
	}
	return n, err
}
