package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// backend serves size pseudo-random bytes at every path (with Range support), echoes request
// bodies' lengths, and counts the requests that reach it.
type backend struct {
	srv   *httptest.Server
	data  []byte
	hits  atomic.Int64
	hosts chan string
}

func newBackend(t *testing.T, size int) *backend {
	t.Helper()
	b := &backend{data: make([]byte, size), hosts: make(chan string, 100)}
	for i := range b.data {
		b.data[i] = byte(i*7 + i/251)
	}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		select {
		case b.hosts <- r.Host:
		default:
		}
		if r.Method == http.MethodPut {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d", n)
			return
		}
		http.ServeContent(w, r, "x", time.Time{}, bytes.NewReader(b.data))
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func newProxy(t *testing.T, b *backend, opts Options) (*Proxy, *httptest.Server) {
	t.Helper()
	p, err := New(b.srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func get(t *testing.T, ctx context.Context, url string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestPassThrough(t *testing.T) {
	b := newBackend(t, 100_000)
	p, srv := newProxy(t, b, Options{})
	resp, body, err := get(t, t.Context(), srv.URL+"/a/b?x=1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, b.data) || resp.ContentLength != int64(len(b.data)) {
		t.Fatalf("status %d, %d bytes (Content-Length %d), want 200 and the backend's %d bytes", resp.StatusCode, len(body), resp.ContentLength, len(b.data))
	}
	if host := <-b.hosts; host != strings.TrimPrefix(srv.URL, "http://") {
		t.Errorf("backend saw Host %q, want the proxy's %q (signatures cover it)", host, srv.URL)
	}
	put, err := http.NewRequest(http.MethodPut, srv.URL+"/up", bytes.NewReader(make([]byte, 12345)))
	if err != nil {
		t.Fatal(err)
	}
	presp, err := http.DefaultClient.Do(put)
	if err != nil {
		t.Fatal(err)
	}
	echo, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if string(echo) != "12345" {
		t.Errorf("backend received %q bytes of the PUT body, want 12345", echo)
	}
	s := p.Stats()
	if s.Requests != 2 || s.BytesIn != 12345 || s.BytesOut != int64(len(b.data))+5 || len(s.Faults) != 0 {
		t.Errorf("stats %+v: want 2 requests, 12345 bytes in, %d out, no faults", s, len(b.data)+5)
	}
}

func TestEachFault(t *testing.T) {
	const size = 300_000
	const at = 100_000
	tests := []struct {
		kind  Kind
		check func(t *testing.T, b *backend, resp *http.Response, body []byte, err error)
	}{
		{Reset, func(t *testing.T, b *backend, resp *http.Response, body []byte, err error) {
			if err == nil || len(body) > at || !bytes.Equal(body, b.data[:len(body)]) {
				t.Errorf("got %d bytes, error %v; want at most %d good bytes and an error", len(body), err, at)
			}
		}},
		{Truncate, func(t *testing.T, b *backend, resp *http.Response, body []byte, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(body, b.data[:at]) {
				t.Errorf("got %d bytes, error %v; want %d good bytes and an unexpected EOF", len(body), err, at)
			}
			if resp.ContentLength != size {
				t.Errorf("Content-Length %d, want the original %d", resp.ContentLength, size)
			}
		}},
		{Flip, func(t *testing.T, b *backend, resp *http.Response, body []byte, err error) {
			if err != nil || len(body) != size {
				t.Fatalf("got %d bytes, error %v; want all %d", len(body), err, size)
			}
			var diff []int
			for i := range body {
				if body[i] != b.data[i] {
					diff = append(diff, i)
				}
			}
			if len(diff) != 1 || diff[0] != at || body[at] != ^b.data[at] {
				t.Errorf("differing bytes at %v, want only %d, inverted", diff, at)
			}
		}},
		{Status500, func(t *testing.T, b *backend, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 500 || b.hits.Load() != 0 {
				t.Errorf("status %v, error %v, backend hit %d times; want 500 without reaching it", resp.StatusCode, err, b.hits.Load())
			}
		}},
		{Status503, func(t *testing.T, b *backend, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 503 || b.hits.Load() != 0 {
				t.Errorf("status %v, error %v, backend hit %d times; want 503 without reaching it", resp.StatusCode, err, b.hits.Load())
			}
		}},
		{SlowDown, func(t *testing.T, b *backend, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 503 || !bytes.Contains(body, []byte("<Error><Code>SlowDown</Code>")) || b.hits.Load() != 0 {
				t.Errorf("status %v, body %q, error %v; want an S3 SlowDown 503", resp.StatusCode, body, err)
			}
		}},
		{WrongLength, func(t *testing.T, b *backend, resp *http.Response, body []byte, err error) {
			if err != nil || resp.ContentLength != size/2 || !bytes.Equal(body, b.data[:size/2]) {
				t.Errorf("Content-Length %d, %d bytes, error %v; want a clean body of %d", resp.ContentLength, len(body), err, size/2)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(string(tc.kind), func(t *testing.T) {
			b := newBackend(t, size)
			p, srv := newProxy(t, b, Options{Faults: []Fault{{Kind: tc.kind, Rate: 1, At: at}}})
			resp, body, err := get(t, t.Context(), srv.URL+"/f")
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			tc.check(t, b, resp, body, err)
			if s := p.Stats(); s.Faults[tc.kind] != 1 || s.Requests != 1 {
				t.Errorf("stats %+v: want one request and one %s fault", s, tc.kind)
			}
		})
	}
}

func TestStall(t *testing.T) {
	b := newBackend(t, 200_000)
	t.Run("outlasted", func(t *testing.T) {
		p, srv := newProxy(t, b, Options{Faults: []Fault{{Kind: Stall, Rate: 1, At: 1000, Stall: 50 * time.Millisecond}}})
		_, body, err := get(t, t.Context(), srv.URL+"/f")
		if err != nil || !bytes.Equal(body, b.data) {
			t.Fatalf("%d bytes, error %v: a stall should end and deliver the whole body", len(body), err)
		}
		if s := p.Stats(); s.Faults[Stall] != 1 || s.StallsOutlasted != 1 || len(s.StallWaits) != 1 {
			t.Errorf("stats %+v: want one stall, outlasted", s)
		}
	})
	t.Run("client gives up", func(t *testing.T) {
		p, srv := newProxy(t, b, Options{Faults: []Fault{{Kind: Stall, Rate: 1, At: 1000}}})
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/f", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadFull(resp.Body, make([]byte, 1000))
		if err != nil {
			t.Fatalf("read %d bytes before the stall: %v", got, err)
		}
		cancel()
		resp.Body.Close()
		srv.Close() // waits for the handler, which returns once it sees the client gone
		if s := p.Stats(); s.Faults[Stall] != 1 || s.StallsOutlasted != 0 || len(s.StallWaits) != 1 {
			t.Errorf("stats %+v: want one stall ended by the client", s)
		}
	})
}

func TestRatesFiltersAndDeterminism(t *testing.T) {
	b := newBackend(t, 1000)
	faults := []Fault{
		{Kind: Status503, Rate: 0.2, Path: regexp.MustCompile(`^/content/`)},
		{Kind: Status500, Rate: 0.1, Methods: []string{http.MethodGet}, Path: regexp.MustCompile(`^/content/`)},
		{Kind: SlowDown, Rate: 1, Path: regexp.MustCompile(`^/limited/`), Max: 3},
	}
	outcome := func(seed uint64) (string, Stats) {
		p, srv := newProxy(t, b, Options{Seed: seed, Faults: faults})
		var trace strings.Builder
		for i := range 400 {
			for _, path := range []string{fmt.Sprintf("/content/%d", i%50), fmt.Sprintf("/other/%d", i), fmt.Sprintf("/limited/%d", i)} {
				resp, _, err := get(t, t.Context(), srv.URL+path)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&trace, "%d ", resp.StatusCode)
				if strings.HasPrefix(path, "/other/") && resp.StatusCode != 200 {
					t.Fatalf("%s answered %d: outside every filter", path, resp.StatusCode)
				}
			}
		}
		return trace.String(), p.Stats()
	}
	a, sa := outcome(1)
	again, _ := outcome(1)
	other, _ := outcome(2)
	if a != again {
		t.Error("the same seed gave different faults")
	}
	if a == other {
		t.Error("different seeds gave the same faults")
	}
	// 400 content requests: about 80 answered 503 and 40 answered 500.
	if n := sa.Faults[Status503]; n < 60 || n > 100 {
		t.Errorf("%d of 400 requests got 503 at rate 0.2", n)
	}
	if n := sa.Faults[Status500]; n < 25 || n > 55 {
		t.Errorf("%d of 400 requests got 500 at rate 0.1", n)
	}
	if n := sa.Faults[SlowDown]; n != 3 {
		t.Errorf("%d SlowDown faults, want Max 3", n)
	}
	if sa.Requests != 1200 {
		t.Errorf("%d requests counted, want 1200", sa.Requests)
	}
	t.Logf("seed 1: %v", sa.Faults)
}

// TestKey: with a key that ignores a per-run query parameter, runs draw the same faults.
func TestKey(t *testing.T) {
	b := newBackend(t, 10)
	trace := func(run int) string {
		_, srv := newProxy(t, b, Options{
			Seed:   3,
			Faults: []Fault{{Kind: Status503, Rate: 0.5}},
			Key:    func(r *http.Request) string { return r.Method + " " + r.URL.Path },
		})
		var s strings.Builder
		for i := range 40 {
			resp, _, err := get(t, t.Context(), fmt.Sprintf("%s/k%d?run=%d", srv.URL, i%7, run))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&s, "%d ", resp.StatusCode)
		}
		return s.String()
	}
	if a, b := trace(1), trace(2); a != b || !strings.Contains(a, "503") || !strings.Contains(a, "200") {
		t.Errorf("runs differ or inject nothing useful:\n%s\n%s", a, b)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		target string
		opts   Options
	}{
		{"ftp://x", Options{}},
		{"http://", Options{}},
		{"http://x", Options{Faults: []Fault{{Kind: "melt", Rate: 0.1}}}},
		{"http://x", Options{Faults: []Fault{{Kind: Reset, Rate: 1.5}}}},
	} {
		if _, err := New(tc.target, tc.opts); err == nil {
			t.Errorf("New(%q, %+v) accepted", tc.target, tc.opts)
		}
	}
}

// TestFlipRequest: the server receives the PUT body with exactly one byte inverted, at the
// offset asked for, with the declared length; requests not matched arrive intact.
func TestFlipRequest(t *testing.T) {
	got := make(chan []byte, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	t.Cleanup(srv.Close)
	p, err := New(srv.URL, Options{Faults: []Fault{{Kind: FlipRequest, Rate: 1, Methods: []string{http.MethodPut}, At: 1234}}})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	body := bytes.Repeat([]byte("abcdefgh"), 1000)
	for _, method := range []string{http.MethodPut, http.MethodPost} {
		req, _ := http.NewRequestWithContext(t.Context(), method, front.URL+"/b/k", bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		recv := <-got
		if len(recv) != len(body) {
			t.Fatalf("%s: server got %d bytes, want %d", method, len(recv), len(body))
		}
		var diff []int
		for i := range body {
			if recv[i] != body[i] {
				diff = append(diff, i)
			}
		}
		want := []int{1234}
		if method != http.MethodPut {
			want = nil
		}
		if fmt.Sprint(diff) != fmt.Sprint(want) {
			t.Errorf("%s: bytes differing at %v, want %v", method, diff, want)
		}
	}
	if st := p.Stats(); st.RequestFlips != 1 || st.Faults[FlipRequest] != 1 {
		t.Errorf("stats: %d request flips, %d faults, want 1 and 1", st.RequestFlips, st.Faults[FlipRequest])
	}
}

// TestLoseAnswer: the server gets and applies the request, the client gets no answer at all.
func TestLoseAnswer(t *testing.T) {
	b := newBackend(t, 1000)
	p, srv := newProxy(t, b, Options{Faults: []Fault{{Kind: LoseAnswer, Rate: 1, Methods: []string{http.MethodPut}, Max: 1}}})
	put := func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL+"/k", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		// A fresh transport: no retry of the request on a reused connection.
		return (&http.Transport{}).RoundTrip(req)
	}
	if resp, err := put(); err == nil {
		resp.Body.Close()
		t.Fatalf("the first PUT was answered (%s), want its answer lost", resp.Status)
	}
	if n := b.hits.Load(); n != 1 {
		t.Fatalf("the server saw %d requests, want 1 (the lost answer's request applied)", n)
	}
	resp, err := put()
	if err != nil {
		t.Fatalf("the second PUT: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "5" {
		t.Errorf("the second PUT's answer %q, want the server's", body)
	}
	if n := p.Stats().Faults[LoseAnswer]; n != 1 {
		t.Errorf("%d answers lost, want 1", n)
	}
}

// TestRewrite: the client gets the body the Rewrite function makes of the server's answer.
func TestRewrite(t *testing.T) {
	b := newBackend(t, 1000)
	_, srv := newProxy(t, b, Options{Faults: []Fault{{Kind: Rewrite, Rate: 1, Rewrite: func(r *http.Request, status int, body []byte) []byte {
		return fmt.Appendf(nil, "%s %d %d", r.URL.Path, status, len(body))
	}}}})
	resp, body, err := get(t, t.Context(), srv.URL+"/x")
	if err != nil {
		t.Fatal(err)
	}
	if want := "/x 200 1000"; string(body) != want || resp.ContentLength != int64(len(want)) {
		t.Errorf("got %q (Content-Length %d), want %q", body, resp.ContentLength, want)
	}
	if _, err := New(b.srv.URL, Options{Faults: []Fault{{Kind: Rewrite, Rate: 1}}}); err == nil {
		t.Error("a Rewrite fault without a function was accepted")
	}
}
