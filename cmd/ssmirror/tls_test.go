package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureServer serves the committed signed fixture.
func fixtureHandler(t *testing.T) http.Handler {
	dir, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "stream"))
	return http.FileServer(http.Dir(dir))
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHTTPSSourceCertificates(t *testing.T) {
	srv := httptest.NewTLSServer(fixtureHandler(t))
	defer srv.Close()
	keyring, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "keys", "test-keyring.gpg"))
	args := func(target string, extra ...string) []string {
		return append(append([]string{"--keyring", keyring}, extra...), srv.URL+"/", target, "release=noble", "arch=arm64", "--max=1")
	}

	// Verification is on: a certificate from an unknown CA is refused, and nothing is written.
	target := filepath.Join(t.TempDir(), "m")
	code, _, stderr := runCLI(args(target)...)
	if code == 0 || !strings.Contains(stderr, "certificate") {
		t.Fatalf("an unknown CA was accepted (exit %d): %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(target, "streams")); err == nil {
		t.Error("metadata written after a TLS failure")
	}

	// --ca-cert trusts it.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	if code, _, stderr := runCLI(args(target, "--ca-cert", ca)...); code != 0 {
		t.Fatalf("--ca-cert: exit %d: %s", code, stderr)
	}

	// --insecure works, and says loudly what it gives up.
	code, _, stderr = runCLI(args(filepath.Join(t.TempDir(), "i"), "--insecure")...)
	if code != 0 || !strings.Contains(stderr, "WARNING: --insecure") {
		t.Fatalf("--insecure: exit %d: %s", code, stderr)
	}
}

func TestPlainHTTPWithoutSignaturesWarns(t *testing.T) {
	srv := httptest.NewServer(fixtureHandler(t))
	defer srv.Close()
	code, _, stderr := runCLI(srv.URL+"/streams/v1/index.json", filepath.Join(t.TempDir(), "m"), "os=pxelinux")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "WARNING") || !strings.Contains(stderr, "plain HTTP without checking signatures") {
		t.Errorf("no warning for an unsigned plain-HTTP source: %q", stderr)
	}
	keyring, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "keys", "test-keyring.gpg"))
	_, _, stderr = runCLI("--keyring", keyring, srv.URL+"/", filepath.Join(t.TempDir(), "k"), "os=pxelinux")
	if strings.Contains(stderr, "WARNING") {
		t.Errorf("warned although signatures are checked: %q", stderr)
	}
}
