package s3store_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ssmirror/ssmirror/internal/faultproxy"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
)

var nextToken = regexp.MustCompile(`<NextContinuationToken>[^<]*</NextContinuationToken>`)
var isTruncated = regexp.MustCompile(`<IsTruncated>[^<]*</IsTruncated>`)

// loopingStore is a store of bucket through a proxy that rewrites every ListObjectsV2 answer to
// say there is more and name the continuation token next gives for the token asked for: a
// server whose listing loops.
func loopingStore(t *testing.T, e *env, bucket string, stall time.Duration, next func(asked string) string) (*s3store.Store, *faultproxy.Proxy) {
	t.Helper()
	isList := func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" }
	p, err := faultproxy.New(e.srv.Endpoint, faultproxy.Options{Faults: []faultproxy.Fault{{
		Kind: faultproxy.Rewrite, Rate: 1, Filter: isList,
		Rewrite: func(r *http.Request, status int, body []byte) []byte {
			if status != http.StatusOK {
				return body
			}
			tok := "<NextContinuationToken>" + next(r.URL.Query().Get("continuation-token")) + "</NextContinuationToken>"
			body = isTruncated.ReplaceAll(body, []byte("<IsTruncated>true</IsTruncated>"))
			if nextToken.Match(body) {
				return nextToken.ReplaceAll(body, []byte(tok))
			}
			return []byte(strings.Replace(string(body), "</ListBucketResult>", tok+"</ListBucketResult>", 1))
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	opts := e.opts
	opts.Endpoint = srv.URL
	opts.ListStall = stall
	client, err := s3store.NewClient(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s3store.New(client, bucket, "mirror/", opts), p
}

// realTokens lists the bucket's mirror/ one key per page and returns the continuation tokens
// the server gave, each valid.
func realTokens(t *testing.T, e *env, bucket string) []string {
	t.Helper()
	client, err := s3store.NewClient(t.Context(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("mirror/"), MaxKeys: aws.Int32(1)}
	for {
		out, err := client.ListObjectsV2(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if !aws.ToBool(out.IsTruncated) {
			return toks
		}
		toks = append(toks, aws.ToString(out.NextContinuationToken))
		in.ContinuationToken = out.NextContinuationToken
	}
}

// TestListLoopEnds: a server whose ListObjectsV2 answers hand back a continuation token they
// handed back before (the same one again, or a cycle of two) makes List fail at once with
// ErrListLoop, naming the endpoint, instead of listing for ever (before: it listed until the
// test's deadline, at full CPU). A server that stops answering a page makes List fail with
// ErrListStalled once ListStall passed without a new key.
func TestListLoopEnds(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		s := e.s3c(t)
		for _, k := range []string{"a", "b", "c"} {
			if _, err := store.PutBytes(t.Context(), s, k, []byte(k), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		toks := realTokens(t, e, s.Bucket())
		if len(toks) < 2 { // MinIO gives a third, for an empty last page
			t.Fatalf("%d tokens for 3 keys one per page, want at least 2", len(toks))
		}
		for _, tc := range []struct {
			name string
			next func(string) string
		}{
			{"same token", func(string) string { return toks[0] }},
			{"cycle of two", func(asked string) string {
				if asked == toks[0] {
					return toks[1]
				}
				return toks[0]
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ls, p := loopingStore(t, e, s.Bucket(), time.Minute, tc.next)
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				start := time.Now()
				n := 0
				err := ls.List(ctx, "", func(store.Info) error { n++; return nil })
				if !errors.Is(err, s3store.ErrListLoop) {
					t.Fatalf("List through a looping listing: %v after %s and %d keys (%d requests), want ErrListLoop", err, time.Since(start).Round(time.Millisecond), n, p.Stats().Requests)
				}
				if !strings.Contains(err.Error(), "127.0.0.1") {
					t.Errorf("the error does not name the endpoint: %v", err)
				}
				if r := p.Stats().Requests; r > 4 {
					t.Errorf("%d list requests before the loop was seen, want at most 4", r)
				}
			})
		}
		t.Run("stalled page", func(t *testing.T) {
			p, err := faultproxy.New(e.srv.Endpoint, faultproxy.Options{Faults: []faultproxy.Fault{{
				Kind: faultproxy.Stall, At: faultproxy.AtStart, Rate: 1, Stall: time.Minute,
				Filter: func(r *http.Request) bool { return r.URL.Query().Get("list-type") == "2" },
			}}})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(p)
			t.Cleanup(srv.Close)
			opts := e.opts
			opts.Endpoint, opts.ListStall = srv.URL, time.Second
			client, err := s3store.NewClient(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			ls := s3store.New(client, s.Bucket(), "mirror/", opts)
			start := time.Now()
			err = ls.List(t.Context(), "", func(store.Info) error { return nil })
			if !errors.Is(err, s3store.ErrListStalled) || !strings.Contains(err.Error(), srv.URL) {
				t.Fatalf("List through a stalled listing: %v, want ErrListStalled naming %s", err, srv.URL)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("the stalled listing failed after %s, want about its 1s ListStall", d)
			}
		})
	})
}

// TestListErrorIsTheServers: a listing the server refuses (no such bucket) fails with the
// server's answer, not as a cancelled context: List used to cancel each page's context before
// it looked at why the page failed, so every refusal read "context canceled (...)" and was
// errors.Is context.Canceled, which the commands take for an interruption.
func TestListErrorIsTheServers(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		client, err := s3store.NewClient(t.Context(), e.opts)
		if err != nil {
			t.Fatal(err)
		}
		s := s3store.New(client, "no-such-bucket-for-listing", "m/", e.opts)
		err = s.List(t.Context(), "", func(store.Info) error { return nil })
		if err == nil {
			t.Fatal("List of a missing bucket succeeded")
		}
		if errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "context canceled") {
			t.Errorf("List of a missing bucket: %v, want the server's answer, not a cancelled context", err)
		}
		if !strings.Contains(err.Error(), "NoSuchBucket") {
			t.Errorf("List of a missing bucket: %v, want it to say NoSuchBucket", err)
		}
	})
}
