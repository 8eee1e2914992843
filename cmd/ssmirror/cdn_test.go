package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"sort"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/cacheproxy"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/internal/testserver"
)

// What a site sees through a CDN: a real caching proxy (nginx proxy_cache) in front of MinIO,
// serving the bucket with the Cache-Control ssmirror writes.

// cdnSite is a bucket in MinIO readable anonymously (as a CDN's origin), an upstream whose
// versions a test changes, and a proxy in front of the bucket.
type cdnSite struct {
	srv      *testserver.Server
	bucket   string
	target   string // s3://bucket/mirror
	proxy    *cacheproxy.Proxy
	upstream *httptest.Server
	handler  atomic.Pointer[http.Handler]
	streams  map[string]*streamtest.Stream // by the newest version
	keyring  string
}

func newCDNSite(t *testing.T, opts cacheproxy.Options) *cdnSite {
	t.Helper()
	if _, err := cacheproxy.Binary(); err != nil && os.Getenv("CI") != "true" {
		t.Skip(err) // before MinIO starts
	}
	s := &cdnSite{srv: testserver.MinIO(t), streams: map[string]*streamtest.Stream{}, keyring: testkeys.Path(testkeys.Keyring)}
	s.bucket = s.srv.NewBucket(t, "cdn")
	s.target = "s3://" + s.bucket + "/mirror"
	s.srv.IsolateAWSEnv(t)
	// Anonymous read of the objects, as `mc anonymous set download` gives (ListBucket too, so
	// a missing key answers 404 rather than 403).
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetBucketLocation","s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s"]},
		{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%[1]s/*"]}]}`, s.bucket)
	if err := s.srv.MinioClient(t).SetBucketPolicy(t.Context(), s.bucket, policy); err != nil {
		t.Fatal(err)
	}
	opts.Origin = s.srv.Endpoint + "/" + s.bucket + "/mirror/"
	s.proxy = cacheproxy.Start(t, opts)
	s.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*s.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(s.upstream.Close)
	return s
}

// dayVersion is the day-th version name.
func dayVersion(day int) string { return fmt.Sprintf("202507%02d", day) }

// offer makes upstream offer these versions (the newest last).
func (s *cdnSite) offer(t *testing.T, versions ...string) *streamtest.Stream {
	t.Helper()
	cfg := streamtest.SmallConfig()
	cfg.Versions = versions
	st, err := streamtest.Generate(cfg, testkeys.Signer(t, testkeys.SigningKey))
	if err != nil {
		t.Fatal(err)
	}
	h := st.Handler()
	s.handler.Store(&h)
	s.streams[versions[len(versions)-1]] = st
	return st
}

// sync runs ssmirror sync from upstream into the bucket with args; it returns the exit code,
// stdout and stderr.
func (s *cdnSite) sync(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	all := append([]string{"--keyring=" + s.keyring, "--s3-endpoint", s.srv.Endpoint, "--region", s.srv.Region,
		s.upstream.URL + "/", s.target, "arch=amd64", "--max=1"}, args...)
	stdout, stderr, code := runMain(t, all...)
	return code, stdout, stderr
}

// readers read the mirror through the proxy as MAAS does, each keeping the index and products
// files it read for hold (a client's cache), then reading a file of the newest version of a
// product they list, whole, checked against the listed size and sha256.
type readers struct {
	base        string
	hold        time.Duration
	reads, errs atomic.Int64
	mu          gosync.Mutex
	failures    []string
}

func (r *readers) fail(format string, args ...any) {
	r.errs.Add(1)
	r.mu.Lock()
	if len(r.failures) < 10 {
		r.failures = append(r.failures, fmt.Sprintf(format, args...))
	}
	r.mu.Unlock()
}

type listedFile struct {
	path   string
	size   int64
	sha256 string
}

// catalogue reads the index and every products file it names, and returns the files of the
// newest version of every product.
func (r *readers) catalogue(ctx context.Context) ([]listedFile, error) {
	var index struct {
		Index map[string]struct{ Path string } `json:"index"`
	}
	if err := getJSON(ctx, r.base+"streams/v1/index.json", &index); err != nil {
		return nil, err
	}
	var files []listedFile
	for _, e := range index.Index {
		var doc struct {
			Products map[string]struct {
				Versions map[string]struct {
					Items map[string]struct {
						Path   string `json:"path"`
						Size   int64  `json:"size"`
						SHA256 string `json:"sha256"`
					} `json:"items"`
				} `json:"versions"`
			} `json:"products"`
		}
		if err := getJSON(ctx, r.base+e.Path, &doc); err != nil {
			return nil, err
		}
		for _, p := range doc.Products {
			newest := ""
			for v := range p.Versions {
				newest = max(newest, v)
			}
			for _, it := range p.Versions[newest].Items {
				if it.Path != "" && strings.Contains(it.Path, "/amd64/") {
					files = append(files, listedFile{it.Path, it.Size, it.SHA256})
				}
			}
		}
	}
	return files, nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (r *readers) run(ctx context.Context) {
	var files []listedFile
	var readAt time.Time
	for ctx.Err() == nil {
		if files == nil || time.Since(readAt) > r.hold {
			var err error
			if files, err = r.catalogue(ctx); err != nil {
				if ctx.Err() == nil {
					r.fail("metadata: %v", err)
				}
				files = nil
				time.Sleep(20 * time.Millisecond)
				continue
			}
			readAt = time.Now()
		}
		if len(files) == 0 {
			continue
		}
		f := files[rand.IntN(len(files))]
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.base+f.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				r.fail("%s: %v", f.path, err)
			}
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		r.reads.Add(1)
		switch {
		case ctx.Err() != nil:
		case resp.StatusCode != http.StatusOK:
			r.fail("%s: %s (listed by an index read %s ago)", f.path, resp.Status, time.Since(readAt).Round(time.Millisecond))
		case err != nil || n != f.size || hex.EncodeToString(h.Sum(nil)) != f.sha256:
			r.fail("%s: %d bytes, want %d (%v)", f.path, n, f.size, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadersThroughCachingProxy: readers read through nginx continuously while, each round, a
// site reads the metadata (the proxy then keeps it its max-age, 8 s), a sync adds a version and
// drops the oldest, and gc runs a second later: with the shortest grace the tool accepts (the
// max-age plus --client-cache 2 s, the readers keeping an index 0.5 s) no read fails; with a
// grace the tool refuses, forced through with --accept-short-grace, readers are served 404 for
// files the index the proxy still serves lists.
func TestReadersThroughCachingProxy(t *testing.T) {
	cache := []string{"--metadata-cache-control", "public, max-age=8", "--client-cache", "2s"}
	for _, c := range []struct {
		name     string
		grace    []string
		wantFail bool
	}{
		{"accepted grace", []string{"--gc-grace=10s"}, false},
		{"refused grace forced", []string{"--gc-grace=1s", "--accept-short-grace"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newCDNSite(t, cacheproxy.Options{}) // content uncached: the worst case
			flags := append(append([]string{}, cache...), c.grace...)
			gc := func() int {
				t.Helper()
				gcArgs := append([]string{"gc", "--s3-endpoint", s.srv.Endpoint, "--region", s.srv.Region, "--json"}, flags...)
				stdout, stderr, code := runMain(t, append(gcArgs, s.target)...)
				if code != 0 {
					t.Errorf("gc: exit %d: %s", code, stderr)
				}
				var rep struct{ Deleted []string }
				json.Unmarshal([]byte(stdout), &rep)
				return len(rep.Deleted)
			}
			st := s.offer(t, dayVersion(1))
			if code, _, stderr := s.sync(t, flags...); code != 0 {
				t.Fatalf("first sync: exit %d: %s", code, stderr)
			}
			var metadata []string
			for p := range st.Files {
				if strings.HasSuffix(p, ".json") {
					metadata = append(metadata, p)
				}
			}
			r := &readers{base: s.proxy.URL, hold: 500 * time.Millisecond}
			ctx, stop := context.WithCancel(t.Context())
			var wg gosync.WaitGroup
			for range 4 {
				wg.Go(func() { r.run(ctx) })
			}
			began := time.Now()
			deleted := 0
			for day := 2; day <= 6; day++ {
				// A site reads the metadata now: the proxy serves this generation 8 s.
				if err := s.proxy.Refresh(t.Context(), metadata...); err != nil {
					t.Fatal(err)
				}
				s.offer(t, dayVersion(day-1), dayVersion(day))
				if code, _, stderr := s.sync(t, flags...); code != 0 {
					stop()
					wg.Wait()
					t.Fatalf("sync of %s: exit %d: %s", dayVersion(day), code, stderr)
				}
				time.Sleep(1100 * time.Millisecond)
				deleted += gc()
			}
			// The last releases come due, the readers still reading.
			time.Sleep(9 * time.Second)
			deleted += gc()
			time.Sleep(time.Second)
			stop()
			wg.Wait()
			t.Logf("%s: %d reads, %d errors in %s; gc deleted %d objects", c.name, r.reads.Load(), r.errs.Load(), time.Since(began).Round(time.Second), deleted)
			for _, f := range r.failures {
				t.Logf("  %s", f)
			}
			if r.reads.Load() < 100 || deleted == 0 {
				t.Errorf("only %d reads, %d deletions", r.reads.Load(), deleted)
			}
			switch {
			case !c.wantFail && r.errs.Load() != 0:
				t.Errorf("%d reads failed with a grace the tool accepts", r.errs.Load())
			case c.wantFail && r.errs.Load() == 0:
				t.Errorf("no read failed with a grace shorter than the caches: the test cannot see the fault")
			}
		})
	}
}

// TestShortGraceRefused: into a bucket, a --gc-grace shorter than the metadata's max-age plus
// --client-cache is refused before any work, naming both numbers and the fix; 0 is a warning.
func TestShortGraceRefused(t *testing.T) {
	fx := fixtureDir(t)
	// No credentials lookup may wait on instance metadata should a refusal not come first.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	args := []string{"--keyring=" + testkeys.Path(testkeys.Keyring), "--s3-endpoint", "http://127.0.0.1:1", fx + "/stream", "s3://bucket/mirror"}
	_, stderr, code := runMain(t, append(args, "--gc-grace=1h")...)
	if code != 2 || !strings.Contains(stderr, "--gc-grace 1h is shorter than the metadata's cache lifetime 5m") ||
		!strings.Contains(stderr, "= 2h5m") || !strings.Contains(stderr, "--gc-grace 2h5m or more") || !strings.Contains(stderr, "--accept-short-grace") {
		t.Errorf("--gc-grace=1h into a bucket: exit %d, %s", code, stderr)
	}
	_, stderr, code = runMain(t, append(args, "--gc-grace=5m", "--metadata-cache-control", "public, max-age=60", "--client-cache", "5m")...)
	if code != 2 || !strings.Contains(stderr, "= 6m") {
		t.Errorf("--gc-grace=5m with max-age 60 and --client-cache 5m: exit %d, %s", code, stderr)
	}
	_, stderr, code = runMain(t, "gc", "--gc-grace=1h", "s3://bucket/mirror")
	if code != 2 || !strings.Contains(stderr, "--accept-short-grace") {
		t.Errorf("gc --gc-grace=1h of a bucket: exit %d, %s", code, stderr)
	}
	// A directory nothing says is cached: not checked (the tests' short graces).
	dir := t.TempDir()
	_, stderr, code = runMain(t, "--keyring="+testkeys.Path(testkeys.Keyring), fx+"/stream", dir, "arch=amd64", "--gc-grace=1h")
	if code != 0 || strings.Contains(stderr, "gc-grace") {
		t.Errorf("--gc-grace=1h into a directory: exit %d, %s", code, stderr)
	}
	// The same directory behind a public URL is checked.
	_, stderr, code = runMain(t, "--keyring="+testkeys.Path(testkeys.Keyring), fx+"/stream", dir, "arch=amd64", "--gc-grace=1h", "--public-url", "http://127.0.0.1:1/")
	if code != 2 || !strings.Contains(stderr, "shorter than") {
		t.Errorf("--gc-grace=1h behind --public-url: exit %d, %s", code, stderr)
	}
	_, stderr, code = runMain(t, "--keyring="+testkeys.Path(testkeys.Keyring), fx+"/stream", dir, "arch=amd64", "--gc-grace=0", "--public-url", "http://127.0.0.1:1/", "--public-wait=0s")
	if code != 0 || !strings.Contains(stderr, "warning: --gc-grace=0 deletes superseded files at once") {
		t.Errorf("--gc-grace=0 behind --public-url: exit %d, %s", code, stderr)
	}
	// That public URL does not answer: one warning saying so (exit 0: the mirror is published).
	if !strings.Contains(stderr, "the public URL http://127.0.0.1:1/ does not answer") || strings.Count(stderr, "connection refused") != 1 {
		t.Errorf("an unreachable public URL: %s", stderr)
	}
}

// summaryOf parses a sync's --json summary.
func summaryOf(t *testing.T, stdout string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout)
	}
	return m
}

// publicOf is the summary's public_url, as the read-back says it.
type publicOf struct {
	IndexSeconds *float64 `json:"index_seconds"`
	Stale        []struct{ Path, What string }
	Missing      []struct{ Path, What string }
	FilesChecked int `json:"files_checked"`
}

func readBackOf(t *testing.T, stdout string) publicOf {
	t.Helper()
	var s struct {
		OK        bool      `json:"ok"`
		PublicURL *publicOf `json:"public_url"`
	}
	if err := json.Unmarshal([]byte(stdout), &s); err != nil || s.PublicURL == nil {
		t.Fatalf("no public_url in the summary (%v):\n%s", err, stdout)
	}
	return *s.PublicURL
}

// fakeCloudFront answers CreateInvalidation by refreshing the invalidated paths in the proxy
// (every object of the bucket under each wildcard path): the invalidation nginx can do.
func fakeCloudFront(t *testing.T, s *cdnSite, invalidated *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Paths []string `xml:"Paths>Items>Path"`
			Ref   string   `xml:"CallerReference"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := xml.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var keys []string
		for _, p := range b.Paths {
			dir := strings.TrimSuffix(strings.TrimPrefix(p, "/"), "*")
			for o := range s.srv.MinioClient(t).ListObjects(r.Context(), s.bucket, minio.ListObjectsOptions{Prefix: "mirror/" + dir, Recursive: true}) {
				keys = append(keys, strings.TrimPrefix(o.Key, "mirror/"))
			}
		}
		if err := s.proxy.Refresh(r.Context(), keys...); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		invalidated.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `<?xml version="1.0"?><Invalidation xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Id>I1</Id><Status>InProgress</Status><CreateTime>2026-12-07T12:00:00.000Z</CreateTime><InvalidationBatch><Paths><Quantity>%d</Quantity></Paths><CallerReference>%s</CallerReference></InvalidationBatch></Invalidation>`, len(b.Paths), b.Ref)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestPublicReadBack: after each publish the run reads the new metadata back through the
// proxy. A cache holding the previous index is reported stale (a warning; exit 1 with
// --public-strict); with a wait longer than the metadata's max-age the run says how long the
// proxy took to serve the new index, and with an invalidation (the proxy refreshed through a
// fake CloudFront) that it did at once; a file the proxy answers 404 for (it cached the 404
// before the file was published) is reported missing.
func TestPublicReadBack(t *testing.T) {
	s := newCDNSite(t, cacheproxy.Options{CacheContent: true, NotFoundTTL: 60 * time.Second})
	flags := []string{"--metadata-cache-control", "public, max-age=4", "--public-url", s.proxy.URL, "--json"}
	get := func(key string) int {
		resp, err := http.Get(s.proxy.URL + key)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		t.Logf("GET %s: %s, X-Cache-Status %s, Cache-Control %q", key, resp.Status, resp.Header.Get("X-Cache-Status"), resp.Header.Get("Cache-Control"))
		return resp.StatusCode
	}
	refresh := func() { // the proxy holds the current index for its max-age from now
		if err := s.proxy.Refresh(t.Context(), "streams/v1/index.json"); err != nil {
			t.Fatal(err)
		}
	}

	s.offer(t, dayVersion(1))
	code, stdout, stderr := s.sync(t, append(flags, "--public-strict")...)
	if rb := readBackOf(t, stdout); code != 0 || len(rb.Stale)+len(rb.Missing) != 0 || rb.IndexSeconds == nil || rb.FilesChecked == 0 {
		t.Fatalf("first publish (cold cache): exit %d, %+v: %s", code, rb, stderr)
	}
	get("streams/v1/index.json") // a site reads the index: the proxy keeps it 4 s

	// A new version, read back for at most 0.5 s: the proxy still serves the old index.
	s.offer(t, dayVersion(1), dayVersion(2))
	code, stdout, stderr = s.sync(t, append(flags, "--public-wait=500ms")...)
	rb := readBackOf(t, stdout)
	stale := map[string]bool{}
	for _, p := range rb.Stale {
		stale[p.Path] = p.What == "stale"
	}
	if code != 0 || !stale["streams/v1/index.json"] || rb.IndexSeconds != nil || !strings.Contains(stderr, "does not serve the publish") {
		t.Errorf("stale cache, default: exit %d, %+v, stderr %s", code, rb, stderr)
	}

	// The same with --public-strict: exit 1.
	get("streams/v1/index.json")
	s.offer(t, dayVersion(2), dayVersion(3))
	code, stdout, _ = s.sync(t, append(flags, "--public-wait=500ms", "--public-strict")...)
	if rb := readBackOf(t, stdout); code != 1 || len(rb.Stale) == 0 || summaryOf(t, stdout)["ok"] != false {
		t.Errorf("stale cache, --public-strict: exit %d, %+v", code, rb)
	}

	// Waiting out the max-age: how long the proxy took without an invalidation.
	refresh()
	s.offer(t, dayVersion(3), dayVersion(4))
	code, stdout, stderr = s.sync(t, append(flags, "--public-wait=20s", "--public-strict")...)
	rb = readBackOf(t, stdout)
	if code != 0 || rb.IndexSeconds == nil {
		t.Fatalf("waiting out the max-age: exit %d, %+v: %s", code, rb, stderr)
	}
	without := *rb.IndexSeconds

	// With an invalidation: the run asks (the fake) CloudFront, which refreshes the proxy.
	var invalidated atomic.Int64
	cf := fakeCloudFront(t, s, &invalidated)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDFRONT", cf.URL)
	refresh()
	s.offer(t, dayVersion(4), dayVersion(5))
	code, stdout, stderr = s.sync(t, append(flags, "--public-wait=20s", "--public-strict", "--cloudfront-distribution", "E2TEST", "--cloudfront-path-prefix", "/")...)
	rb = readBackOf(t, stdout)
	if code != 0 || rb.IndexSeconds == nil || invalidated.Load() != 1 {
		t.Fatalf("with an invalidation: exit %d, %d invalidations, %+v: %s", code, invalidated.Load(), rb, stderr)
	}
	with := *rb.IndexSeconds
	t.Logf("publish to the proxy serving the new index (metadata max-age 4 s): %.2fs without invalidation, %.2fs with (the proxy refreshed by the invalidation)", without, with)
	if with > 1 || without < 1 {
		t.Errorf("with an invalidation %.2fs, without %.2fs", with, without)
	}

	// A file of the next version asked for before it is published: the proxy caches the 404
	// (as CloudFront caches errors) and serves it after the publish.
	next := s.offer(t, dayVersion(5), dayVersion(6))
	var early string
	for _, p := range sortedPaths(next) {
		if strings.Contains(p, dayVersion(6)) && strings.Contains(p, "/amd64/") {
			early = p
			break
		}
	}
	if early == "" || get(early) != http.StatusNotFound || get(early) != http.StatusNotFound {
		t.Fatalf("no unpublished file to ask for (%q)", early)
	}
	code, stdout, stderr = s.sync(t, append(flags, "--public-wait=10s")...)
	rb = readBackOf(t, stdout)
	missing := map[string]string{}
	for _, p := range rb.Missing {
		missing[p.Path] = p.What
	}
	if code != 0 || missing[early] != "missing" || len(rb.Stale) != 0 {
		t.Errorf("a 404 the proxy cached: exit %d, %+v (want %s missing): %s", code, rb, early, stderr)
	}
}

func sortedPaths(st *streamtest.Stream) []string {
	var out []string
	for p := range st.Content {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// TestCheckThroughProxy: ssmirror check reads the mirror through the proxy as a site would and
// finds a file deleted from the bucket behind the mirror's back (the proxy never cached it);
// once a sync brings it back, the check passes; --max-age fails a mirror published longer ago.
func TestCheckThroughProxy(t *testing.T) {
	s := newCDNSite(t, cacheproxy.Options{CacheContent: true})
	st := s.offer(t, dayVersion(1))
	if code, _, stderr := s.sync(t); code != 0 {
		t.Fatalf("sync: exit %d: %s", code, stderr)
	}
	var gone string
	for _, p := range sortedPaths(st) {
		if strings.Contains(p, "/amd64/") && path.Base(p) == "boot-kernel" {
			gone = p
		}
	}
	if err := s.srv.MinioClient(t).RemoveObject(t.Context(), s.bucket, "mirror/"+gone, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	check := []string{"check", "--keyring=" + s.keyring, "--json", s.proxy.URL, "arch=amd64", "--max=1"}
	type report struct {
		OK        bool `json:"ok"`
		Files     int  `json:"files"`
		Missing   []struct{ Path, What string }
		Freshness *struct {
			Upstream string `json:"upstream"`
		} `json:"freshness"`
	}
	stdout, _, code := runMain(t, check...)
	var rep report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 1 || rep.OK || len(rep.Missing) != 1 || rep.Missing[0].Path != gone || rep.Missing[0].What != "missing" {
		t.Errorf("check after %s was deleted: exit %d, %+v: %s", gone, code, rep, stdout)
	}
	// The next sync sees it gone and brings it back: the check passes.
	if code, _, stderr := s.sync(t); code != 0 {
		t.Fatalf("sync: exit %d: %s", code, stderr)
	}
	stdout, stderr, code := runMain(t, check...)
	rep = report{}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 0 || !rep.OK || rep.Files == 0 || rep.Freshness == nil || rep.Freshness.Upstream != s.upstream.URL+"/" {
		t.Fatalf("check of the healed mirror: exit %d, %+v (%v): %s%s", code, rep, err, stdout, stderr)
	}
	// Staleness for monitors: --max-age shorter than the mirror's age fails.
	time.Sleep(1100 * time.Millisecond)
	if _, _, code := runMain(t, "check", "--max-age=1s", s.proxy.URL, "arch=amd64", "--max=1", "--sample=0"); code != 1 {
		t.Errorf("--max-age=1s of a mirror published over a second ago: exit %d", code)
	}
	if _, _, code := runMain(t, "check", "--max-age=1h", s.proxy.URL, "arch=amd64", "--max=1", "--sample=0"); code != 0 {
		t.Errorf("--max-age=1h: exit %d", code)
	}
}
