package cdn

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/google/go-cmp/cmp"
)

// invalidationBatch is the request body of CreateInvalidation.
type invalidationBatch struct {
	XMLName         xml.Name `xml:"InvalidationBatch"`
	Paths           []string `xml:"Paths>Items>Path"`
	Quantity        int      `xml:"Paths>Quantity"`
	CallerReference string   `xml:"CallerReference"`
}

// fakeCloudFront answers CloudFront's CreateInvalidation REST call
// (POST /2020-05-31/distribution/{id}/invalidation) and records what it was sent. It knows the
// distributions in known; others get CloudFront's NoSuchDistribution error.
type fakeCloudFront struct {
	known map[string]bool

	mu       sync.Mutex
	requests []recorded
}

type recorded struct {
	distribution string
	batch        invalidationBatch
	auth         string
}

func (f *fakeCloudFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/2020-05-31/distribution/")
	id, tail, _ := strings.Cut(rest, "/")
	if !ok || tail != "invalidation" || r.Method != http.MethodPost {
		http.Error(w, "not implemented by the fake: "+r.Method+" "+r.URL.Path, http.StatusNotImplemented)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var b invalidationBatch
	if err := xml.Unmarshal(body, &b); err != nil {
		http.Error(w, "bad XML: "+err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, recorded{distribution: id, batch: b, auth: r.Header.Get("Authorization")})
	n := len(f.requests)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	if !f.known[id] {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `<?xml version="1.0"?><ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Error><Type>Sender</Type><Code>NoSuchDistribution</Code><Message>The specified distribution does not exist.</Message></Error><RequestId>req-%d</RequestId></ErrorResponse>`, n)
		return
	}
	invID := fmt.Sprintf("I%04dEXAMPLE", n)
	w.Header().Set("Location", "https://cloudfront.amazonaws.com/2020-05-31/distribution/"+id+"/invalidation/"+invID)
	w.WriteHeader(http.StatusCreated)
	var items strings.Builder
	for _, p := range b.Paths {
		items.WriteString("<Path>")
		xml.EscapeText(&items, []byte(p))
		items.WriteString("</Path>")
	}
	fmt.Fprintf(w, `<?xml version="1.0"?><Invalidation xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Id>%s</Id><Status>InProgress</Status><CreateTime>2025-07-01T12:00:00.000Z</CreateTime><InvalidationBatch><Paths><Quantity>%d</Quantity><Items>%s</Items></Paths><CallerReference>%s</CallerReference></InvalidationBatch></Invalidation>`,
		invID, len(b.Paths), items.String(), b.CallerReference)
}

func newFake(t *testing.T, known ...string) (*fakeCloudFront, *cloudfront.Client) {
	t.Helper()
	fake := &fakeCloudFront{known: map[string]bool{}}
	for _, k := range known {
		fake.known[k] = true
	}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := cloudfront.New(cloudfront.Options{
		Region:       DefaultRegion,
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "not-a-secret"}, nil
		}),
		RetryMaxAttempts: 1,
	})
	return fake, client
}

func TestInvalidate(t *testing.T) {
	fake, client := newFake(t, "E2EXAMPLE")
	paths := Paths("/maas/stable/", []string{"streams/v1/com.ubuntu.maas:stable:v3:download.json", "streams/v1/index.sjson"})
	id, err := Invalidate(t.Context(), client, "E2EXAMPLE", paths)
	if err != nil {
		t.Fatal(err)
	}
	if id != "I0001EXAMPLE" {
		t.Errorf("id = %q, want the fake's I0001EXAMPLE", id)
	}
	id2, err := Invalidate(t.Context(), client, "E2EXAMPLE", paths)
	if err != nil {
		t.Fatal(err)
	}
	if id2 != "I0002EXAMPLE" {
		t.Errorf("second id = %q, want I0002EXAMPLE", id2)
	}
	if len(fake.requests) != 2 {
		t.Fatalf("fake saw %d requests, want 2", len(fake.requests))
	}
	for i, r := range fake.requests {
		if r.distribution != "E2EXAMPLE" {
			t.Errorf("request %d: distribution %q", i, r.distribution)
		}
		if diff := cmp.Diff([]string{"/maas/stable/streams/v1/*"}, r.batch.Paths); diff != "" {
			t.Errorf("request %d: paths (-want +got):\n%s", i, diff)
		}
		if r.batch.Quantity != len(r.batch.Paths) {
			t.Errorf("request %d: Quantity %d for %d paths", i, r.batch.Quantity, len(r.batch.Paths))
		}
		if !strings.HasPrefix(r.batch.CallerReference, "ssmirror-") {
			t.Errorf("request %d: caller reference %q", i, r.batch.CallerReference)
		}
		if !strings.HasPrefix(r.auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(r.auth, "/us-east-1/cloudfront/") {
			t.Errorf("request %d: not signed for CloudFront in us-east-1: %q", i, r.auth)
		}
	}
	if a, b := fake.requests[0].batch.CallerReference, fake.requests[1].batch.CallerReference; a == b {
		t.Errorf("two invalidations sent the same caller reference %q: CloudFront would treat the second as a replay", a)
	}
}

func TestInvalidateUnknownDistribution(t *testing.T) {
	_, client := newFake(t, "E2EXAMPLE")
	_, err := Invalidate(t.Context(), client, "EWRONG", []string{"/streams/v1/*"})
	if err == nil {
		t.Fatal("no error for an unknown distribution")
	}
	var nsd *types.NoSuchDistribution
	if !errors.As(err, &nsd) {
		t.Errorf("error does not wrap the SDK's NoSuchDistribution: %v", err)
	}
	if !strings.Contains(err.Error(), "EWRONG") || !strings.Contains(err.Error(), "/streams/v1/*") {
		t.Errorf("error does not name the distribution and paths: %v", err)
	}
}

func TestInvalidateRefusesBadInput(t *testing.T) {
	fake, client := newFake(t, "E2EXAMPLE")
	for _, tc := range []struct {
		dist  string
		paths []string
	}{
		{"", []string{"/streams/v1/*"}},
		{"E2EXAMPLE", nil},
		{"E2EXAMPLE", []string{"streams/v1/*"}},
	} {
		if _, err := Invalidate(t.Context(), client, tc.dist, tc.paths); err == nil {
			t.Errorf("Invalidate(%q, %q): no error", tc.dist, tc.paths)
		}
	}
	if len(fake.requests) != 0 {
		t.Errorf("bad input reached CloudFront: %d requests", len(fake.requests))
	}
}

func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		keys   []string
		want   []string
	}{
		{"/", []string{"streams/v1/index.sjson"}, []string{"/streams/v1/*"}},
		{"", []string{"streams/v1/index.sjson"}, []string{"/streams/v1/*"}},
		{"/maas/stable/", []string{"streams/v1/a.json", "streams/v1/index.sjson"}, []string{"/maas/stable/streams/v1/*"}},
		{"maas/stable", []string{"streams/v1/a.json"}, []string{"/maas/stable/streams/v1/*"}},
		{"/m/", []string{"streams/v1/index.json", "other/streams/v1/x.json"}, []string{"/m/other/streams/v1/*", "/m/streams/v1/*"}},
		{"/m/", nil, nil},
	} {
		if diff := cmp.Diff(tc.want, Paths(tc.prefix, tc.keys)); diff != "" {
			t.Errorf("Paths(%q, %q) (-want +got):\n%s", tc.prefix, tc.keys, diff)
		}
	}
}

func TestDefaultPathPrefix(t *testing.T) {
	for in, want := range map[string]string{"": "/", "/": "/", "maas/stable": "/maas/stable/", "maas/stable/": "/maas/stable/"} {
		if got := DefaultPathPrefix(in); got != want {
			t.Errorf("DefaultPathPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}
