package deploy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	gosync "sync"
	"testing"

	"github.com/ssmirror/ssmirror/internal/cacheproxy"
)

// TestNginxCacheConf runs the caching proxy the operator guide ships (nginx/ssmirror-cache.conf)
// as written, but for its cache directory, port and origin, in front of an origin answering as
// the bucket does with the Cache-Control ssmirror writes. The metadata, the freshness record and
// content are served from the cache the second time (the origin sees one GET each, HEAD
// included); a missing file is asked of the origin every time (a 404 is not cached, so a file
// published after a miss is found at once).
func TestNginxCacheConf(t *testing.T) {
	shipped, err := os.ReadFile("nginx/ssmirror-cache.conf")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{ // under the bucket's prefix: its Cache-Control
		"streams/v1/index.json":      "public, max-age=300",
		".ssmirror/freshness.json":   "public, max-age=60",
		"jammy/amd64/boot-kernel":    "public, max-age=31536000, immutable",
		"streams/v1/com.ubuntu.json": "public, max-age=300",
	}
	var mu gosync.Mutex
	asked := map[string]int{}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.URL.Path, "/maas-images/stable/")
		mu.Lock()
		asked[r.Method+" "+key]++
		mu.Unlock()
		cc, found := files[key]
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", cc)
		fmt.Fprintf(w, "the bytes of %s\n", key)
	}))
	defer origin.Close()

	p := cacheproxy.StartWith(t, "/stable/", func(dir, listen string) (string, error) {
		conf := string(shipped)
		for _, r := range [][2]string{
			{"/var/lib/nginx/ssmirror-cache", dir + "/cache"},
			{"listen 8080;", "listen " + listen + ";"},
			{"http://127.0.0.1:9000/", origin.URL + "/"},
		} {
			if !strings.Contains(conf, r[0]) {
				return "", fmt.Errorf("nginx/ssmirror-cache.conf no longer has %q: this test (and the operator guide) need it", r[0])
			}
			conf = strings.ReplaceAll(conf, r[0], r[1])
		}
		return conf, nil
	})

	get := func(method, key string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, p.URL+key, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s through the proxy: %v\n%s", method, key, err, p.ErrorLog())
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Cache-Status")
	}
	for key := range files {
		if code, _ := get(http.MethodGet, key); code != http.StatusOK {
			t.Fatalf("GET %s: %d", key, code)
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			if code, cache := get(m, key); code != http.StatusOK || cache != "HIT" {
				t.Errorf("%s %s again: %d, X-Cache-Status %q, want 200 from the cache (HIT)", m, key, code, cache)
			}
		}
		mu.Lock()
		if n := asked["GET "+key] + asked["HEAD "+key]; n != 1 {
			t.Errorf("the origin was asked for %s %d times, want once", key, n)
		}
		mu.Unlock()
	}
	const missing = "noble/amd64/not-yet-published"
	for range 2 {
		if code, cache := get(http.MethodGet, missing); code != http.StatusNotFound || cache == "HIT" {
			t.Errorf("GET %s: %d, X-Cache-Status %q, want 404 from the origin", missing, code, cache)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := asked["GET "+missing]; n != 2 {
		t.Errorf("the origin was asked for the missing %s %d times in two requests: a 404 was cached", missing, n)
	}
}
