// Package publiccheck reads a mirror through the URL its clients read it from (a CDN, a caching
// proxy, a web server), as a site would: the index, the products files, the freshness record
// and the files they name. It is what a sync's read-back after a publish (ReadBack) and
// ssmirror check (Check) are made of. It never writes and never asks a cache to revalidate:
// what it is served is what a client is served.
package publiccheck

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	gosync "sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Problem is one thing the public URL serves wrong.
type Problem struct {
	Path string `json:"path"`
	// What is "stale" (an older version than published), "missing" (404, 403 or 410),
	// "size" (served with another size), "content" (another sha256, or unreadable),
	// "signature" (does not verify) or "error" (no answer, or another status).
	What   string `json:"what"`
	Detail string `json:"detail"`
}

func (p Problem) String() string { return p.Path + ": " + p.What + " (" + p.Detail + ")" }

// File is a file the public URL must serve: its path under the mirror root, size and sha256.
type File struct {
	Path   string
	Size   int64
	SHA256 string
}

// Client reads one mirror root through its public URL.
type Client struct {
	HTTP      *http.Client
	Base      *url.URL // the mirror root, ending in "/"
	UserAgent string
}

// NewClient reads the mirror root at rawURL with client (nil: http.DefaultClient).
func NewClient(client *http.Client, rawURL, userAgent string) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("public URL %q: want an http(s) URL", rawURL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &Client{HTTP: client, Base: u, UserAgent: userAgent}, nil
}

// URL is the public URL of key.
func (c *Client) URL(key string) string {
	ref := &url.URL{Path: key}
	return c.Base.ResolveReference(ref).String()
}

// Response is one answer of the public URL.
type Response struct {
	Status int
	Body   []byte // GET only
	Size   int64  // Content-Length (-1: not given)
	Header http.Header
}

// missing reports whether the answer says there is no such object (an S3 bucket read without
// s3:ListBucket answers 403 for a key it does not hold).
func (r *Response) missing() bool {
	return r.Status == http.StatusNotFound || r.Status == http.StatusForbidden || r.Status == http.StatusGone
}

// cacheNote says what the response's caching headers say, for messages.
func (r *Response) cacheNote() string {
	var parts []string
	for _, h := range []string{"Age", "X-Cache-Status", "X-Cache", "Last-Modified"} {
		if v := r.Header.Get(h); v != "" {
			parts = append(parts, h+": "+v)
		}
	}
	return strings.Join(parts, ", ")
}

// Get fetches key with GET, reading at most limit bytes of its body.
func (c *Client) Get(ctx context.Context, key string, limit int64) (*Response, error) {
	return c.do(ctx, http.MethodGet, key, limit)
}

// Head asks for key with HEAD.
func (c *Client) Head(ctx context.Context, key string) (*Response, error) {
	return c.do(ctx, http.MethodHead, key, 0)
}

// newRequest makes a request as a client's: with Accept-Encoding: gzip on every method (Go's
// transport adds it to a plain GET only), so that a cache keeping variants by Accept-Encoding
// (Vary, as MinIO sends) answers a HEAD from the variant its GETs are served (nginx answered
// 200 to a HEAD without it for a file whose GETs it served a cached 404).
func (c *Client) newRequest(ctx context.Context, method, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL(key), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "gzip")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method, key string, limit int64) (*Response, error) {
	req, err := c.newRequest(ctx, method, key)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, c.URL(key), err)
	}
	defer resp.Body.Close()
	out := &Response{Status: resp.StatusCode, Size: resp.ContentLength, Header: resp.Header}
	if method == http.MethodGet && resp.StatusCode == http.StatusOK {
		body, err := decoded(resp)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", c.URL(key), err)
		}
		out.Body, err = io.ReadAll(io.LimitReader(body, limit+1))
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", c.URL(key), err)
		}
		if int64(len(out.Body)) > limit {
			return nil, fmt.Errorf("GET %s: larger than %d bytes", c.URL(key), limit)
		}
	}
	return out, nil
}

// hash streams key's body into sha256: its size and hex sum.
func (c *Client) hash(ctx context.Context, key string) (status int, size int64, sum string, err error) {
	req, err := c.newRequest(ctx, http.MethodGet, key)
	if err != nil {
		return 0, 0, "", err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, 0, "", fmt.Errorf("GET %s: %w", c.URL(key), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0, "", nil
	}
	body, err := decoded(resp)
	if err != nil {
		return resp.StatusCode, 0, "", fmt.Errorf("GET %s: %w", c.URL(key), err)
	}
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return resp.StatusCode, n, "", fmt.Errorf("GET %s: %w", c.URL(key), err)
	}
	return resp.StatusCode, n, hex.EncodeToString(h.Sum(nil)), nil
}

// FilesOptions say how files are checked.
type FilesOptions struct {
	// Concurrency is how many requests are in flight (0: 8).
	Concurrency int
	// Deep hashes every file (GET); otherwise each file is asked for with HEAD and its size
	// compared, and Sample files, picked at random, are hashed.
	Deep   bool
	Sample int
}

// CheckFiles checks that the public URL serves every file: present, with its size, and, for
// the files hashed, its sha256. It returns the problems, sorted by path, and how many files
// were hashed.
func (c *Client) CheckFiles(ctx context.Context, files []File, opts FilesOptions) (problems []Problem, hashed int, err error) {
	n := opts.Concurrency
	if n <= 0 {
		n = 8
	}
	hashIt := map[string]bool{}
	if opts.Deep {
		for _, f := range files {
			hashIt[f.Path] = true
		}
	} else if opts.Sample > 0 {
		for _, i := range rand.Perm(len(files))[:min(opts.Sample, len(files))] {
			hashIt[files[i].Path] = true
		}
	}
	var mu gosync.Mutex
	add := func(p Problem) {
		mu.Lock()
		problems = append(problems, p)
		mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for _, f := range files {
		g.Go(func() error {
			if hashIt[f.Path] {
				status, size, sum, err := c.hash(gctx, f.Path)
				switch {
				case err != nil && gctx.Err() != nil:
					return gctx.Err()
				case err != nil:
					add(Problem{f.Path, "error", err.Error()})
				case status != http.StatusOK:
					add(statusProblem(f.Path, status))
				case size != f.Size:
					add(Problem{f.Path, "size", fmt.Sprintf("served %d bytes, want %d", size, f.Size)})
				case f.SHA256 != "" && sum != f.SHA256:
					add(Problem{f.Path, "content", fmt.Sprintf("served sha256 %s, want %s", sum, f.SHA256)})
				}
				mu.Lock()
				hashed++
				mu.Unlock()
				return nil
			}
			resp, err := c.Head(gctx, f.Path)
			switch {
			case err != nil && gctx.Err() != nil:
				return gctx.Err()
			case err != nil:
				add(Problem{f.Path, "error", err.Error()})
			case resp.Status != http.StatusOK:
				add(statusProblem(f.Path, resp.Status))
			case resp.Size >= 0 && resp.Size != f.Size:
				add(Problem{f.Path, "size", fmt.Sprintf("served %d bytes, want %d", resp.Size, f.Size)})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, hashed, err
	}
	sortProblems(problems)
	return problems, hashed, nil
}

// decoded is resp's body, gunzipped when the server compressed it (Accept-Encoding is set by
// hand, so the transport leaves that to the caller).
func decoded(resp *http.Response) (io.Reader, error) {
	if !strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		return resp.Body, nil
	}
	return gzip.NewReader(resp.Body)
}

// statusProblem is a file answered with status instead of 200.
func statusProblem(path string, status int) Problem {
	what := "error"
	if status == http.StatusNotFound || status == http.StatusForbidden || status == http.StatusGone {
		what = "missing"
	}
	return Problem{path, what, "HTTP " + strconv.Itoa(status)}
}

func sortProblems(ps []Problem) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Path != ps[j].Path {
			return ps[i].Path < ps[j].Path
		}
		return ps[i].What < ps[j].What
	})
}

// hexSum is the lowercase hex sha256 of data.
func hexSum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// seconds is d in seconds, for JSON.
func seconds(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}
