package httpstore

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStripUserInfo(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@host/p/":                     "https://host/p/",
		"http://user@host:8080/p?q#f":                 "http://host:8080/p?q#f",
		"http://host/p/":                              "http://host/p/",
		"http://u:p%zz@host/":                         "http://host/",  // does not parse
		"http://u:pa/ss@host/x":                       "http://host/x", // does not parse either
		"s3://key:secret@bucket/prefix":               "s3://bucket/prefix",
		"/srv/mirror":                                 "/srv/mirror",
		"relative/dir@2":                              "relative/dir@2",
		"http://host/path/with@sign":                  "http://host/path/with@sign",
		"https://user:p%40ss@host/streams/v1/i.sjson": "https://host/streams/v1/i.sjson",
	} {
		if got := StripUserInfo(in); got != want {
			t.Errorf("StripUserInfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// Credentials in a base URL are sent as basic auth, to that base only, and appear in no error
// and no Describe, whatever fails.
func TestUserInfoIsAuthNeverShown(t *testing.T) {
	const user, pass = "u-zq7", "p-zq7"
	const mirrorUser, mirrorPass = "mu-zq7", "mp-zq7"
	want := content(5000)
	check := func(u, p string, next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if gu, gp, ok := r.BasicAuth(); !ok || gu != u || gp != p {
				http.Error(w, "who are you", http.StatusUnauthorized)
				return
			}
			next(w, r)
		}
	}
	primary := httptest.NewServer(check(user, pass, func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, "/m/") {
		case "ok":
			w.Header().Set("Content-Length", "5000")
			w.Write(want)
		case "forbidden":
			http.Error(w, "no", http.StatusForbidden)
		case "broken":
			http.Error(w, "down", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer primary.Close()
	mirror := httptest.NewServer(check(mirrorUser, mirrorPass, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			w.Write(want[:10])
			return
		}
		http.NotFound(w, r)
	}))
	defer mirror.Close()
	creds := func(srv *httptest.Server, u, p, path string) string {
		return strings.Replace(srv.URL, "://", "://"+u+":"+p+"@", 1) + path
	}
	s := newStore(t, creds(primary, user, pass, "/m"), Options{Mirrors: []string{creds(mirror, mirrorUser, mirrorPass, "/")}, Retries: -1})
	ctx := t.Context()

	var shown []string
	note := func(what string, err error) {
		if err != nil {
			shown = append(shown, what+": "+err.Error())
		}
	}
	got, err := readAll(t, s, "ok", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want)
	if got, err := readAll(t, s, "elsewhere", 0); err != nil || len(got) != 10 {
		t.Fatalf("the mirror's own credentials: %d bytes, %v", len(got), err)
	}
	if info, err := s.Stat(ctx, "ok"); err != nil || info.Size != 5000 {
		t.Fatalf("stat: %+v %v", info, err)
	}
	for _, key := range []string{"forbidden", "broken", "missing"} {
		_, err := readAll(t, s, key, 0)
		if err == nil {
			t.Errorf("%s: read", key)
		}
		note("open "+key, err)
		_, err = s.Stat(ctx, key)
		note("stat "+key, err)
	}
	shown = append(shown, s.Describe())
	_, err = New(nil, "http://"+user+":"+pass+"%zz@host/", Options{})
	note("bad URL", err)
	_, err = New(nil, "ftp://"+user+":"+pass+"@host/", Options{})
	note("bad scheme", err)

	// A body cut off mid-way fails on resume: that message names the URL too.
	cut := httptest.NewServer(check(user, pass, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5000")
		w.Write(want[:100])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer cut.Close()
	sc := newStore(t, creds(cut, user, pass, "/"), Options{Retries: 1})
	rc, err := sc.Open(ctx, "x", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if err == nil {
		t.Fatal("a cut body read whole")
	}
	note("cut body", err)

	if len(shown) < 10 {
		t.Fatalf("only %d messages", len(shown))
	}
	for _, msg := range shown {
		for _, secret := range []string{user, pass, mirrorUser, mirrorPass} {
			if strings.Contains(msg, secret) {
				t.Errorf("%q shows %s", msg, secret)
			}
		}
	}
	t.Logf("messages:\n%s", strings.Join(shown, "\n"))
}
