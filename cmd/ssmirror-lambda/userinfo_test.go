package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// User info in $SSMIRROR_SOURCE is sent as basic auth and appears in no output of the function:
// its result, its error, its JSON log; with a working upstream and with failing ones.
func TestURLUserInfoNeverShown(t *testing.T) {
	const user, pass = "fn-user-zq7", "fn-pass-zq7"
	e := setupMinIO(t)
	fixture := http.FileServer(http.Dir(repoFile(t, "stream")))
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fixture.ServeHTTP(w, r)
	}))
	defer auth.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/"
	ln.Close()
	creds := func(u, p, url string) string { return strings.Replace(url, "://", "://"+u+":"+p+"@", 1) }

	for _, tc := range []struct {
		name, source, target string
		dryRun, ok           bool
	}{
		{name: "working, dry run", source: creds(user, pass, auth.URL+"/"), dryRun: true, ok: true},
		{name: "working", source: creds(user, pass, auth.URL+"/"), ok: true},
		{name: "wrong password", source: creds(user, "x"+pass, auth.URL+"/")},
		{name: "refused connection", source: creds(user, pass, refused)},
		{name: "malformed", source: creds(user, pass+"%zz", auth.URL+"/")},
		{name: "s3 target with user info", source: creds(user, pass, auth.URL+"/"), target: "s3://" + user + ":" + pass + "@" + e.bucket + "/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SSMIRROR_SOURCE", tc.source)
			if tc.target != "" {
				t.Setenv("SSMIRROR_TARGET", tc.target)
			}
			var logs bytes.Buffer
			sum, err := run(t.Context(), Event{DryRun: tc.dryRun}, os.LookupEnv, slog.New(slog.NewJSONHandler(&logs, nil)))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want success %v", err, tc.ok)
			}
			out := logs.String()
			if err != nil {
				out += "\nerror: " + err.Error()
			}
			if sum != nil {
				data, _ := json.Marshal(sum)
				out += "\nresult: " + string(data)
			}
			for _, secret := range []string{user, pass} {
				if strings.Contains(out, secret) {
					t.Errorf("the output shows %q:\n%s", secret, out)
				}
			}
			t.Logf("%s", out)
		})
	}
	// The working run used the credentials: the bucket holds the content.
	if _, ok := e.objects(t)["maas/stable/noble/amd64/20250718/squashfs"]; !ok {
		t.Fatalf("the working run wrote no content: %v", keys(e.objects(t)))
	}
}
