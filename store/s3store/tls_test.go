package s3store_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
)

// TestCABundle puts MinIO behind a TLS proxy whose certificate only a custom CA bundle trusts,
// and checks that NewClient honours AWS_CA_BUNDLE: with the system bundle the handshake fails,
// with the proxy's certificate as the bundle single and multipart puts work over HTTPS.
func TestCABundle(t *testing.T) {
	srv := testserver.Shared(t, testserver.KindMinIO)
	srv.IsolateAWSEnv(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy keeps the client's Host header, which is what SigV4 signed.
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	proxy.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	proxy.StartTLS()
	t.Cleanup(proxy.Close)
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw})
	if err := os.WriteFile(bundle, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t, "tls")
	opts := s3store.Options{Endpoint: proxy.URL, Region: srv.Region, PartSize: testPartSize}
	data := randBytes(7, 2*testPartSize+99)

	t.Run("SystemBundle", func(t *testing.T) {
		const system = "/etc/ssl/certs/ca-certificates.crt"
		if os.Getenv("AWS_CA_BUNDLE") == "" {
			if _, err := os.Stat(system); err != nil {
				t.Skipf("AWS_CA_BUNDLE is not set and %s is absent", system)
			}
			t.Setenv("AWS_CA_BUNDLE", system)
		}
		client, err := s3store.NewClient(t.Context(), opts)
		if err != nil {
			t.Fatalf("NewClient with AWS_CA_BUNDLE=%s: %v", os.Getenv("AWS_CA_BUNDLE"), err)
		}
		s := s3store.New(client, bucket, "", opts)
		_, err = s.Put(t.Context(), "untrusted", bytes.NewReader([]byte("x")), store.PutOptions{Size: 1})
		var unknown x509.UnknownAuthorityError
		var verify *tls.CertificateVerificationError
		if !errors.As(err, &unknown) && !errors.As(err, &verify) {
			t.Errorf("Put through a proxy the bundle does not trust = %v, want a certificate error", err)
		}
	})

	t.Run("CustomBundle", func(t *testing.T) {
		t.Setenv("AWS_CA_BUNDLE", bundle)
		client, err := s3store.NewClient(t.Context(), opts)
		if err != nil {
			t.Fatalf("NewClient with a custom AWS_CA_BUNDLE: %v", err)
		}
		s := s3store.New(client, bucket, "over/tls", opts)
		for _, key := range []string{"small", "large"} {
			body := data
			if key == "small" {
				body = data[:1000]
			}
			if _, err := s.Put(t.Context(), key, bytes.NewReader(body), store.PutOptions{Size: int64(len(body)), SHA256: sha(body)}); err != nil {
				t.Fatalf("Put(%s) over HTTPS: %v", key, err)
			}
			got, err := store.ReadAll(t.Context(), s, key, 0)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("ReadAll(%s) over HTTPS: %d bytes, %v; want %d bytes", key, len(got), err, len(body))
			}
			st, err := s.Stat(t.Context(), key)
			if err != nil || st.SHA256 != sha(body) {
				t.Errorf("Stat(%s) over HTTPS = %+v, %v", key, st, err)
			}
		}
	})
	// Options.CABundle (a location's own, --s3-ca-bundle) wins over AWS_CA_BUNDLE: with the
	// environment naming a bundle that does not trust the proxy, the store's own does.
	t.Run("OptionsBundle", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other.pem")
		otherCert := httptest.NewTLSServer(nil)
		otherCert.Close()
		if err := os.WriteFile(other, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: otherCert.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CA_BUNDLE", other)
		own := opts
		own.CABundle = bundle
		client, err := s3store.NewClient(t.Context(), own)
		if err != nil {
			t.Fatalf("NewClient with Options.CABundle: %v", err)
		}
		s := s3store.New(client, bucket, "own/tls", own)
		if _, err := s.Put(t.Context(), "small", bytes.NewReader(data[:1000]), store.PutOptions{Size: 1000, SHA256: sha(data[:1000])}); err != nil {
			t.Fatalf("Put over HTTPS trusted by Options.CABundle: %v", err)
		}
		own.CABundle = filepath.Join(t.TempDir(), "missing.pem")
		if _, err := s3store.NewClient(t.Context(), own); err == nil {
			t.Error("NewClient with a missing CA bundle: no error")
		}
	})
	// A location's profile's ca_bundle wins over AWS_CA_BUNDLE (the operator guide's site
	// profiles name their CA on a machine whose environment names another bundle): the SDK
	// puts a profile set in code before the environment, for its own profile or not.
	t.Run("OwnProfileBundle", func(t *testing.T) {
		dir := t.TempDir()
		other := filepath.Join(dir, "other.pem")
		otherCert := httptest.NewTLSServer(nil)
		otherCert.Close()
		if err := os.WriteFile(other, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: otherCert.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CA_BUNDLE", other)
		cfgFile := filepath.Join(dir, "config")
		if err := os.WriteFile(cfgFile, []byte("[profile site]\nendpoint_url = "+proxy.URL+"\nca_bundle = "+bundle+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CONFIG_FILE", cfgFile)
		credFile := filepath.Join(dir, "credentials")
		if err := os.WriteFile(credFile, []byte("[site]\naws_access_key_id = "+srv.AccessKey+"\naws_secret_access_key = "+srv.SecretKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", credFile)
		for _, own := range []bool{true, false} {
			o := s3store.Options{Region: srv.Region, Profile: "site", OwnProfile: own, PartSize: testPartSize}
			client, err := s3store.NewClient(t.Context(), o)
			if err != nil {
				t.Fatalf("NewClient with the profile's ca_bundle (own %v): %v", own, err)
			}
			s := s3store.New(client, bucket, "profile/tls", o)
			_, err = s.Put(t.Context(), "small", bytes.NewReader(data[:1000]), store.PutOptions{Size: 1000, SHA256: sha(data[:1000])})
			if err != nil {
				t.Errorf("Put over HTTPS trusted by the profile's ca_bundle (own %v): %v", own, err)
			}
		}
	})
}
