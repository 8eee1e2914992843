// Package cacheproxy starts a real caching reverse proxy (nginx with proxy_cache, from Debian's
// nginx package) in front of a mirror's origin, for tests: what a site reading a mirror through
// a CDN sees. The proxy caches each response for as long as its Cache-Control allows (and,
// like CloudFront, may cache a 404 for a while); a test can refresh cached paths from the
// origin (Refresh), which is what a CDN invalidation achieves (Debian's nginx has no
// proxy_cache_purge).
//
// nginx is looked up in $PATH and /usr/sbin. When it is missing the test is skipped, except
// with CI=true, where it fails (.ci/run installs nginx).
package cacheproxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"
)

// Options configure the proxy.
type Options struct {
	// Origin is the URL the mirror root is proxied to, ending in "/" (a MinIO bucket readable
	// anonymously: http://127.0.0.1:9000/bucket/prefix/).
	Origin string
	// CacheContent caches content files as their Cache-Control allows (ssmirror writes a year,
	// immutable), as a CDN does; false passes content through uncached and caches only the
	// metadata (streams/ and .ssmirror/): the worst case for deletions, an edge that never saw
	// a file or evicted it.
	CacheContent bool
	// NotFoundTTL, when set, caches 404 answers this long (CloudFront caches errors for 10 s by
	// default).
	NotFoundTTL time.Duration
}

// Proxy is a running nginx.
type Proxy struct {
	// URL is the mirror root through the proxy, ending in "/".
	URL    string
	dir    string
	config string
	cmd    *exec.Cmd
	done   chan struct{}
}

// frame is what every proxy's configuration has around its own part of the http block: the
// process's files in the test's directory (nginx's workers run as root when the test does, since
// they cannot read a private home directory otherwise).
var frame = template.Must(template.New("nginx.conf").Parse(`{{if .Root}}user root;
{{end}}worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events { worker_connections 1024; }
http {
    access_log {{.Dir}}/access.log;
    client_body_temp_path {{.Dir}}/tmp/body;
    proxy_temp_path {{.Dir}}/tmp/proxy;
    fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
    uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
    scgi_temp_path {{.Dir}}/tmp/scgi;
{{.HTTP}}
}
`))

// testProxy is the tests' proxy, inside the http block.
var testProxy = template.Must(template.New("proxy").Parse(`    # A caching reverse proxy in front of a mirror's origin (nginx proxy_cache).
    # Cached as the origin's Cache-Control says: the metadata 5 minutes by default, content a year.
    proxy_cache_path {{.Dir}}/cache levels=1:2 keys_zone=mirror:10m max_size=10g inactive=7d use_temp_path=off;
    server {
        listen {{.Listen}};
        proxy_http_version 1.1;
        proxy_cache_lock on;
        # One cached copy per path: MinIO's Vary (Origin, Accept-Encoding) would keep one per
        # client kind, and a HEAD could be answered from another copy than the GETs.
        proxy_ignore_headers Vary;
        add_header X-Cache-Status $upstream_cache_status always;
        # A request with "X-Refresh: 1" is fetched from the origin and replaces the cached copy:
        # what an invalidation achieves (tests only; keep it off a public proxy).
        proxy_cache_bypass $http_x_refresh;
{{- if .NotFoundTTL}}
        proxy_cache_valid 404 {{.NotFoundTTL}}s;
{{- end}}
        location / {
            proxy_pass {{.Origin}};
            proxy_cache {{if .CacheContent}}mirror{{else}}off{{end}};
        }
        location /streams/ {
            proxy_pass {{.Origin}}streams/;
            proxy_cache mirror;
        }
        location /.ssmirror/ {
            proxy_pass {{.Origin}}.ssmirror/;
            proxy_cache mirror;
        }
    }`))

// Binary finds nginx, or says where it looked.
func Binary() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", fmt.Errorf("nginx not found in $PATH or /usr/sbin (Debian: apt-get install nginx)")
}

// Start starts nginx in front of opts.Origin until the test ends.
func Start(t testing.TB, opts Options) *Proxy {
	t.Helper()
	if !strings.HasSuffix(opts.Origin, "/") {
		opts.Origin += "/"
	}
	return StartWith(t, "/", func(dir, listen string) (string, error) {
		var conf strings.Builder
		err := testProxy.Execute(&conf, map[string]any{
			"Dir": dir, "Listen": listen, "Origin": opts.Origin,
			"CacheContent": opts.CacheContent, "NotFoundTTL": int(opts.NotFoundTTL / time.Second),
		})
		return conf.String(), err
	})
}

// StartWith starts nginx with a configuration of the caller's inside its http block until the
// test ends: http gives it for the test's directory (dir, where a cache may go; dir/cache
// exists) and the address to listen on. The proxy's URL is root on that address.
func StartWith(t testing.TB, root string, http func(dir, listen string) (string, error)) *Proxy {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	var lastErr error
	for range 3 { // another process may take the free port first
		p, err := start(t, bin, root, http)
		if err == nil {
			t.Cleanup(p.stop)
			return p
		}
		lastErr = err
	}
	t.Fatalf("starting nginx: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, root string, http func(dir, listen string) (string, error)) (*Proxy, error) {
	dir := t.TempDir()
	for _, d := range []string{"tmp", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	listen := l.Addr().String()
	l.Close()
	inner, err := http(dir, listen)
	if err != nil {
		return nil, err
	}
	var conf strings.Builder
	if err := frame.Execute(&conf, map[string]any{"Root": os.Geteuid() == 0, "Dir": dir, "HTTP": inner}); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", file, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	p := &Proxy{URL: "http://" + listen + root, dir: dir, config: conf.String(), cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("nginx exited: %s", log)
		default:
		}
		if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("nginx not listening on %s after 10s", listen)
}

func (p *Proxy) stop() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(os.Interrupt) // nginx: SIGINT is a fast shutdown
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// Config is the nginx configuration the proxy runs with.
func (p *Proxy) Config() string { return p.config }

// ErrorLog is what nginx logged.
func (p *Proxy) ErrorLog() string {
	data, _ := os.ReadFile(filepath.Join(p.dir, "error.log"))
	return string(data)
}

// Refresh fetches each path (relative to the mirror root) from the origin, replacing the
// proxy's cached copy: what a CDN invalidation achieves, done the way this nginx can.
func (p *Proxy) Refresh(ctx context.Context, paths ...string) error {
	for _, key := range paths {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+key, nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-Refresh", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("refreshing %s: %w", key, err)
		}
		resp.Body.Close()
	}
	return nil
}
