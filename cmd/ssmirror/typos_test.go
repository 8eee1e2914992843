package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/testserver"
)

// Loud typos, from the real binary: each mistake is named with what was meant, and the
// refusals come before anything is written.

func TestUnknownEnvWarned(t *testing.T) {
	bin := buildBinary(t)
	stream := filepath.Join(fixtureDir(t), "stream")
	code, _, stderr := runBinary(t, bin, []string{"SSMIRROR_MAXX=1", "SSMIRROR_LOG_FROMAT=json", "SSMIRROR_MAX=1", "SSMIRROR_WHATEVER_THIS_IS=1"},
		"query", "--no-verify", stream, "arch=amd64")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{
		"$SSMIRROR_MAXX is not a setting of ssmirror and is ignored (did you mean $SSMIRROR_MAX?)",
		"$SSMIRROR_LOG_FROMAT is not a setting of ssmirror and is ignored (did you mean $SSMIRROR_LOG_FORMAT?)",
		"$SSMIRROR_WHATEVER_THIS_IS is not a setting of ssmirror and is ignored\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "$SSMIRROR_MAX ") {
		t.Errorf("a real variable was warned about:\n%s", stderr)
	}
}

func TestFilterTyposExplained(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	stream := filepath.Join(fx, "stream")
	dir := t.TempDir()
	target := filepath.Join(dir, "m")
	n := 0
	conf := func(text string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("c%d.conf", n))
		if err := os.WriteFile(p, []byte("source = "+stream+"\ntarget = "+target+"\nno-verify = true\n"+text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"blanks on the command line", nil, []string{"--no-verify", stream, target, "arch", "=", "amd64"},
			`filter "arch = amd64": blanks around the operator split it into 3 words; write it as one, without blanks: arch=amd64`},
		{"blank after the operator", nil, []string{"--no-verify", stream, target, "release=noble", "arch=", "amd64"},
			`filter "arch= amd64": blanks around the operator`},
		{"blanks in $SSMIRROR_FILTERS", []string{"SSMIRROR_FILTERS=arch ~ amd64"}, []string{"--no-verify", stream, target},
			`filter "arch ~ amd64": blanks around the operator`},
		{"blanks in a [filter] section", nil, []string{"sync", "--config", conf("[filter]\narch = amd64\n")},
			`c1.conf:5: filter "arch = amd64": blanks around the operator (they would be part of the key or the value); write arch=amd64`},
		{"a setting after [filter]", nil, []string{"sync", "--config", conf("[filter]\narch=amd64\nmax = 1\n")},
			`c2.conf:6: "max = 1" is a setting, but it follows the [filter] header on line 4, so it is read as a filter of that section: settings go before the first [filter] section`},
		{"source after [filter]", nil, []string{"sync", "--config", conf("[filter]\narch=amd64\n\n[filter]\nrelease=noble\nkeyring=/x.gpg\n")},
			`c3.conf:9: "keyring=/x.gpg" is a setting, but it follows the [filter] header on line 7`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runBinary(t, bin, tc.env, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want %d; stderr lacks %q:\n%s", code, exitUsage, tc.want, stderr)
			}
			if _, err := os.Stat(target); err == nil {
				t.Errorf("the refused run created %s", target)
			}
		})
	}
	// path is an item attribute as well as a setting: path=… in a [filter] section is a filter.
	code, _, stderr := runBinary(t, bin, nil, "sync", "--dry-run", "--config", conf("[filter]\npath~^noble/\n"))
	if code != 0 {
		t.Errorf("a path filter in a [filter] section: exit %d\n%s", code, stderr)
	}
}

// TestMissingCredentials: with no AWS credentials anywhere, a run into MinIO says which
// variables or flag to set, at once, rather than the SDK's chain of provider errors.
func TestMissingCredentials(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.NewBucket(t, "nocreds")
	bin := buildBinary(t)
	stream := filepath.Join(fixtureDir(t), "stream")
	var env []string
	for _, kv := range srv.AWSEnv(t) {
		if !strings.HasPrefix(kv, "AWS_ACCESS_KEY_ID=") && !strings.HasPrefix(kv, "AWS_SECRET_ACCESS_KEY=") {
			env = append(env, kv)
		}
	}
	env = append(env, "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_PROFILE=", "AWS_SESSION_TOKEN=")
	code, _, stderr := runBinary(t, bin, env, "--no-verify", stream, "s3://"+bucket+"/m")
	for _, want := range []string{"no AWS credentials found", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", "--profile"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code != exitFailure || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Errorf("exit %d, want %d, and one line:\n%s", code, exitFailure, stderr)
	}
	mc := srv.MinioClient(t)
	for obj := range mc.ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		t.Errorf("the bucket holds %s", obj.Key)
	}
}

// TestTLSSchemeMismatch: https:// to a server speaking plain HTTP (an S3 endpoint, a source) is
// refused at once with the http:// URL to use, not retried.
func TestTLSSchemeMismatch(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.NewBucket(t, "scheme")
	bin := buildBinary(t)
	stream := filepath.Join(fixtureDir(t), "stream")
	https := "https://" + srv.Host()
	code, _, stderr := runBinary(t, bin, srv.AWSEnv(t), "--no-verify", "--s3-endpoint", https, stream, "s3://"+bucket+"/m")
	want := "S3 endpoint " + https + ": the server at " + srv.Host() + " does not speak TLS (it answered in plain HTTP): use http://" + srv.Host()
	if code != exitUsage || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, want %d; stderr lacks %q:\n%s", code, exitUsage, want, stderr)
	}

	plain := httptest.NewServer(http.FileServer(http.Dir(stream)))
	defer plain.Close()
	src := strings.Replace(plain.URL, "http://", "https://user:secret@", 1) + "/"
	code, _, stderr = runBinary(t, bin, nil, "--no-verify", src, filepath.Join(t.TempDir(), "m"))
	if code != exitUsage || !strings.Contains(stderr, "does not speak TLS") || !strings.Contains(stderr, "use "+plain.URL+"/") || strings.Contains(stderr, "secret") {
		t.Errorf("https source on a plain HTTP server: exit %d\n%s", code, stderr)
	}
}

// TestTLSUntrustedFailsAtOnce: an https:// S3 endpoint or source whose certificate does not
// verify is refused at once (the SDK would retry 8 times, about 30 s), saying how to trust it.
func TestTLSUntrustedFailsAtOnce(t *testing.T) {
	bin := buildBinary(t)
	stream := filepath.Join(fixtureDir(t), "stream")
	var requests atomic.Int32
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) }))
	defer untrusted.Close()
	env := []string{"AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y", "AWS_EC2_METADATA_DISABLED=true"}
	code, _, stderr := runBinary(t, bin, env, "--no-verify", "--s3-endpoint", untrusted.URL, stream, "s3://bucket/m")
	if code != exitFailure || !strings.Contains(stderr, "S3 endpoint "+untrusted.URL+": its TLS certificate does not verify") || !strings.Contains(stderr, "AWS_CA_BUNDLE") {
		t.Errorf("untrusted S3 endpoint: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runBinary(t, bin, nil, "--no-verify", untrusted.URL+"/", filepath.Join(t.TempDir(), "m"))
	if code != exitFailure || !strings.Contains(stderr, "its TLS certificate does not verify") || !strings.Contains(stderr, "--ca-cert") {
		t.Errorf("untrusted source: exit %d\n%s", code, stderr)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests reached the untrusted server", n)
	}
}
