package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Credentials in a SOURCE URL: distinctive strings that must appear in no output.
const (
	credUser = "mirror-user-zq7"
	credPass = "mirror-pass-zq7"
)

// authHandler answers 401 to a request without the credentials, else hands it on.
func authHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != credUser || p != credPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="mirror"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withCreds puts the credentials into an http://host/... URL.
func withCreds(u string) string {
	return strings.Replace(u, "://", "://"+credUser+":"+credPass+"@", 1)
}

// TestURLUserInfoNeverShown runs the command line with user:pass@ in SOURCE (and in --mirror,
// in $SSMIRROR_SOURCE, in TARGET) against a working upstream that wants those credentials and
// against upstreams that fail in every way a message can name a URL: refused connection, 500,
// 401 without the credentials, 404 and 403 on content, a malformed URL. No stdout or stderr, in
// text or JSON logs, progress, the --json summary or a dry run, holds the user name or password.
func TestURLUserInfoNeverShown(t *testing.T) {
	keyring, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "keys", "test-keyring.gpg"))
	fixture := fixtureHandler(t)

	good := httptest.NewServer(authHandler(fixture))
	defer good.Close()
	// Metadata served, content refused: 404 for squashfs files, 403 for kernels.
	partial := httptest.NewServer(authHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/squashfs"):
			http.NotFound(w, r)
		case strings.HasSuffix(r.URL.Path, "/boot-kernel"):
			http.Error(w, "forbidden", http.StatusForbidden)
		default:
			fixture.ServeHTTP(w, r)
		}
	})))
	defer partial.Close()
	// Metadata served, every content file 404: the --mirror serves it.
	missing := httptest.NewServer(authHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/streams/") {
			http.NotFound(w, r)
			return
		}
		fixture.ServeHTTP(w, r)
	})))
	defer missing.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer broken.Close()
	noAuth := httptest.NewServer(authHandler(fixture))
	defer noAuth.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/"
	ln.Close()

	src := withCreds(good.URL + "/")
	badCreds := strings.Replace(noAuth.URL+"/", "://", "://"+credUser+":wrong-"+credPass+"@", 1)
	target := func() string { return filepath.Join(t.TempDir(), "m") }
	base := []string{"--keyring", keyring, "--max=1"}
	sel := []string{"release=noble", "arch=arm64"}

	type run struct {
		name  string
		env   map[string]string
		args  []string
		ok    bool
		files []string // written by the run, checked like its output
	}
	var runs []run
	for _, logs := range [][]string{{"-vv"}, {"-vv", "--log-format", "json"}} {
		add := func(name string, ok bool, args ...string) {
			runs = append(runs, run{name: name + " " + strings.Join(logs, " "), args: append(append(cloneArgs(args), logs...), base...), ok: ok})
		}
		add("working upstream", true, append([]string{src, target(), "--progress"}, sel...)...)
		add("working upstream, --json", true, append([]string{src, target(), "--json"}, sel...)...)
		add("working upstream, --dry-run", true, append([]string{src, target(), "--dry-run"}, sel...)...)
		add("working upstream, start path", true, append([]string{src + "streams/v1/index.sjson", target()}, sel...)...)
		add("primary 404, credentials in --mirror", true, append([]string{withCreds(missing.URL + "/"), target(), "--mirror", src}, sel...)...)
		add("refused connection, --json", false, append([]string{withCreds(refused), target(), "--json"}, sel...)...)
		add("500", false, append([]string{withCreds(broken.URL + "/"), target(), "--progress"}, sel...)...)
		add("wrong password: 401", false, append([]string{badCreds, target()}, sel...)...)
		add("content 404 and 403", false, append([]string{withCreds(partial.URL + "/"), target(), "--json"}, sel...)...)
		add("malformed URL", false, append([]string{"http://" + credUser + ":" + credPass + "%zz@127.0.0.1:1/", target()}, sel...)...)
		add("http TARGET", false, src, withCreds(good.URL+"/target/"))
		prom := filepath.Join(t.TempDir(), "ssmirror.prom")
		add("http TARGET, metrics", false, src, withCreds(good.URL+"/target/"), "--metrics-textfile", prom)
		runs[len(runs)-1].files = []string{prom}
		add("s3 TARGET with user info", false, src, "s3://"+credUser+":"+credPass+"@bucket/prefix")
		add("unsupported scheme", false, "ftp://"+credUser+":"+credPass+"@host/", target())
		runs = append(runs, run{name: "$SSMIRROR_SOURCE " + strings.Join(logs, " "), ok: true,
			env:  map[string]string{"SSMIRROR_SOURCE": src, "SSMIRROR_TARGET": target(), "SSMIRROR_KEYRING": keyring, "SSMIRROR_MAX": "1"},
			args: append([]string{"sync", "--json"}, logs...)})
		conf := filepath.Join(t.TempDir(), "job.conf")
		err := os.WriteFile(conf, []byte("source = "+badCreds+"\ntarget = "+target()+"\nkeyring = "+keyring+
			"\nmax = 1\n[filter]\nrelease=noble\n"), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run{name: "config file, failing " + strings.Join(logs, " "),
			env: map[string]string{"SSMIRROR_CONFIG": conf}, args: append([]string{"sync", "--json"}, logs...)})
	}
	runs = append(runs,
		run{name: "query", ok: true, args: []string{"query", "--keyring", keyring, src, "release=noble", "--max=1"}},
		run{name: "query, failing", args: []string{"query", "--keyring", keyring, badCreds, "release=noble"}},
		run{name: "query, malformed", args: []string{"query", "http://" + credUser + ":" + credPass + "%zz@127.0.0.1:1/"}},
	)
	// Runs that set no environment run in parallel: the failing ones spend seconds in the
	// metadata retries' backoff.
	t.Run("runs", func(t *testing.T) {
		for _, r := range runs {
			t.Run(r.name, func(t *testing.T) {
				if r.env == nil {
					t.Parallel()
				}
				for k, v := range r.env {
					t.Setenv(k, v)
				}
				code, stdout, stderr := runCLI(r.args...)
				if (code == 0) != r.ok {
					t.Errorf("exit %d, want success %v\nstdout: %s\nstderr: %s", code, r.ok, stdout, stderr)
				}
				outputs := map[string]string{"stdout": stdout, "stderr": stderr}
				for _, f := range r.files {
					data, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					outputs[f] = string(data)
				}
				for _, secret := range []string{credPass, credUser} {
					for name, out := range outputs {
						if i := strings.Index(out, secret); i >= 0 {
							t.Errorf("%s shows %q: …%s…", name, secret, out[max(0, i-120):min(len(out), i+60)])
						}
					}
				}
				if t.Failed() || testing.Verbose() {
					t.Logf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
				}
			})
		}
	})

	// The working runs did use the credentials: the mirror holds the content.
	dir := target()
	if code, _, stderr := runCLI(append(append([]string{}, base...), append([]string{src, dir}, sel...)...)...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "noble/arm64/20250718/squashfs")); err != nil {
		t.Fatal(err)
	}
}

func cloneArgs(s []string) []string { return append([]string(nil), s...) }
