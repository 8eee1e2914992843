package main

import (
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/testserver"
)

// sites are two S3 services with different root credentials (two MinIO servers, as two sites
// would run), and an AWS shared configuration naming them: profile creds-a holds site A's keys
// only (its endpoint is given elsewhere), profile site-b holds site B's keys with its
// endpoint_url and region, profile creds-b site B's keys only.
type sites struct {
	a, b      *testserver.Server
	awsConfig string
	awsCreds  string
}

func newSites(t *testing.T) *sites {
	t.Helper()
	s := &sites{a: testserver.MinIO(t), b: testserver.MinIO(t)}
	if s.a.AccessKey == s.b.AccessKey {
		t.Fatal("the two servers share their credentials")
	}
	dir := t.TempDir()
	s.awsConfig, s.awsCreds = filepath.Join(dir, "config"), filepath.Join(dir, "credentials")
	config := "[profile creds-a]\nregion = " + s.a.Region + "\n\n" +
		"[profile site-b]\nendpoint_url = " + s.b.Endpoint + "\nregion = " + s.b.Region + "\n\n" +
		"[profile creds-b]\nregion = " + s.b.Region + "\n"
	creds := "[creds-a]\naws_access_key_id = " + s.a.AccessKey + "\naws_secret_access_key = " + s.a.SecretKey + "\n\n" +
		"[site-b]\naws_access_key_id = " + s.b.AccessKey + "\naws_secret_access_key = " + s.b.SecretKey + "\n\n" +
		"[creds-b]\naws_access_key_id = " + s.b.AccessKey + "\naws_secret_access_key = " + s.b.SecretKey + "\n"
	for p, text := range map[string]string{s.awsConfig: config, s.awsCreds: creds} {
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// env is the environment of a run that knows the two sites only through the shared
// configuration: no AWS_* or SSMIRROR_* variable of the developer's (AWS_CA_BUNDLE kept), no
// default credentials, endpoint or profile; extra added.
func (s *sites) env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if (strings.HasPrefix(name, "AWS_") && name != "AWS_CA_BUNDLE") || strings.HasPrefix(name, "SSMIRROR_") {
			env = append(env, name+"=")
		}
	}
	env = append(env, "AWS_CONFIG_FILE="+s.awsConfig, "AWS_SHARED_CREDENTIALS_FILE="+s.awsCreds, "AWS_EC2_METADATA_DISABLED=true")
	return append(env, extra...)
}

// listBucket lists what a bucket holds under prefix with its own server's client (minio-go,
// not ssmirror's S3 code): key below prefix → size.
func listBucket(t *testing.T, srv *testserver.Server, bucket, prefix string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for o := range srv.MinioClient(t).ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("listing %s on %s: %v", bucket, srv.Endpoint, o.Err)
		}
		out[strings.TrimPrefix(o.Key, prefix)] = o.Size
	}
	return out
}

// listDir lists a directory target's files: path → size.
func listDir(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// samePublished fails unless got holds every published file of want (content, metadata, with
// its size), .ssmirror's own records aside.
func samePublished(t *testing.T, name string, got, want map[string]int64) {
	t.Helper()
	n := 0
	for p, size := range want {
		if strings.HasPrefix(p, ".ssmirror/") {
			continue
		}
		n++
		if g, ok := got[p]; !ok || g != size {
			t.Errorf("%s: %s is %d bytes (present %v), want %d", name, p, g, ok, size)
		}
	}
	if _, ok := got["streams/v1/index.sjson"]; !ok || n < 5 {
		t.Errorf("%s: not published (%d files to compare): %v", name, n, got)
	}
}

// TestTargetsOnTwoServices: one fan-out run publishes into two S3 services with different
// credentials (two MinIO servers) and a directory, each target reached with its own settings,
// configured each way ssmirror offers: a location's ?endpoint= with a profile holding its
// credentials; ?profile= alone, the profile's endpoint_url giving the endpoint (and path-style
// addressing); and the config file's [target] sections. An s3:// source on one service feeds a
// target on the other. status, verify and gc then reach the services the sync used through
// $SSMIRROR_* and the config file, as sync does.
func TestTargetsOnTwoServices(t *testing.T) {
	s := newSites(t)
	bin := buildBinary(t)
	fx := fixtureDir(t)
	keyring := filepath.Join(fx, "keys", "test-keyring.gpg")
	source := filepath.Join(fx, "stream")
	a1, b1 := s.a.NewBucket(t, "site-a-url"), s.b.NewBucket(t, "site-b-profile")
	dir := filepath.Join(t.TempDir(), "www")
	aLoc := "s3://" + a1 + "/m?endpoint=" + s.a.Endpoint + "&profile=creds-a"
	bLoc := "s3://" + b1 + "/m?profile=site-b"

	code, stdout, stderr := runBinary(t, bin, s.env(), "--keyring", keyring, "--max=1", "--json",
		"--target", aLoc, "--target", bLoc, source, dir, "arch=amd64")
	if code != 0 {
		t.Fatalf("fan-out to two services and a directory: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var sum fanOutSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || !sum.OK || len(sum.Targets) != 3 {
		t.Fatalf("summary (%v): %s", err, stdout)
	}
	if sum.Targets[1].Target != aLoc || sum.Targets[2].Target != bLoc {
		t.Errorf("the summary does not name the targets as given: %s", stdout)
	}
	want := listDir(t, dir)
	samePublished(t, "site A (?endpoint=, credentials from a profile)", listBucket(t, s.a, a1, "m/"), want)
	samePublished(t, "site B (?profile=, endpoint_url from the profile)", listBucket(t, s.b, b1, "m/"), want)

	t.Run("config file", func(t *testing.T) {
		a2, b2 := s.a.NewBucket(t, "site-a-conf"), s.b.NewBucket(t, "site-b-conf")
		conf := filepath.Join(t.TempDir(), "sites.conf")
		text := "source = " + source + "\nkeyring = " + keyring + "\nmax = 1\n" +
			"[target]\ntarget = s3://" + a2 + "/m\ns3-endpoint = " + s.a.Endpoint + "\nprofile = creds-a\n" +
			"[target]\ntarget = s3://" + b2 + "/m\nprofile = site-b\ns3-addressing-style = path\n" +
			"[filter]\narch=amd64\n"
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, stdout, stderr := runBinary(t, bin, s.env("SSMIRROR_CONFIG="+conf), "sync"); code != 0 {
			t.Fatalf("sync --config: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		samePublished(t, "site A ([target] s3-endpoint, profile)", listBucket(t, s.a, a2, "m/"), want)
		samePublished(t, "site B ([target] profile)", listBucket(t, s.b, b2, "m/"), want)

		// status, verify and gc read the same file: each reaches the service sync used.
		for _, target := range []string{"s3://" + a2 + "/m", "s3://" + b2 + "/m"} {
			for _, args := range [][]string{{"status", "--json", target}, {"verify", target}, {"gc", "--dry-run", target}} {
				code, stdout, stderr := runBinary(t, bin, s.env("SSMIRROR_CONFIG="+conf), args...)
				if code != 0 {
					t.Errorf("%s with the config file: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
				}
				if args[0] == "verify" && !strings.Contains(stdout, "signatures checked") {
					t.Errorf("verify did not take the keyring from the config file: %s", stdout)
				}
			}
		}

		// A [mirror] section's target, by naming the section.
		sections := filepath.Join(t.TempDir(), "mirrors.conf")
		text = "keyring = " + keyring + "\nmax = 1\n[mirror site-a]\nsource = " + source + "\n" +
			"[target]\ntarget = s3://" + a2 + "/m\ns3-endpoint = " + s.a.Endpoint + "\nprofile = creds-a\n[filter]\narch=amd64\n"
		if err := os.WriteFile(sections, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"status", "--config", sections, "--only-mirror", "site-a"}, {"verify", "--config", sections, "s3://" + a2 + "/m"}} {
			if code, stdout, stderr := runBinary(t, bin, s.env(), args...); code != 0 {
				t.Errorf("%s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
			}
		}
	})

	t.Run("status of $SSMIRROR_TARGET", func(t *testing.T) {
		// The target itself from $SSMIRROR_TARGET, with its own settings.
		code, stdout, stderr := runBinary(t, bin, s.env("SSMIRROR_TARGET="+bLoc), "status", "--json")
		if code != 0 || !strings.Contains(stdout, `"products"`) {
			t.Errorf("status of $SSMIRROR_TARGET=%s: exit %d\nstdout: %s\nstderr: %s", bLoc, code, stdout, stderr)
		}
	})

	t.Run("s3 source on the other service", func(t *testing.T) {
		b3 := s.b.NewBucket(t, "site-b-spoke")
		spoke := "s3://" + b3 + "/m?profile=site-b"
		code, stdout, stderr := runBinary(t, bin, s.env(), "--keyring", keyring, "--max=1", aLoc, spoke, "arch=amd64")
		if code != 0 {
			t.Fatalf("s3 source on site A, target on site B: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		samePublished(t, "site B (from site A's bucket)", listBucket(t, s.b, b3, "m/"), want)
	})

	t.Run("no server-side copy across services", func(t *testing.T) {
		// Site A holds every file already; a new bucket on site B gets them from upstream, not by
		// a copy request from A's bucket (another service, other credentials).
		b5 := s.b.NewBucket(t, "site-b-new")
		bNew := "s3://" + b5 + "/m?profile=site-b"
		code, stdout, stderr := runBinary(t, bin, s.env(), "--keyring", keyring, "--max=1", "--json", "--target", bNew, source, aLoc, "arch=amd64")
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		var sum fanOutSummary
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil || len(sum.Targets) != 2 || sum.Targets[0].Fetched != 0 || sum.Targets[1].Fetched == 0 {
			t.Errorf("summary (%v): %s", err, stdout)
		}
		if strings.Contains(stdout, `"files_copied_from"`) {
			t.Errorf("files copied server-side across services: %s", stdout)
		}
		samePublished(t, "site B (new bucket)", listBucket(t, s.b, b5, "m/"), want)
	})

	t.Run("CA bundle of one target", func(t *testing.T) {
		// Site B behind TLS with a certificate no system CA signed; site A in plain HTTP.
		u, err := url.Parse(s.b.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		front := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(u))
		defer front.Close()
		ca := filepath.Join(t.TempDir(), "site-b-ca.pem")
		if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}), 0o644); err != nil {
			t.Fatal(err)
		}
		a4, b4 := s.a.NewBucket(t, "site-a-tls"), s.b.NewBucket(t, "site-b-tls")
		aTLS := "s3://" + a4 + "/m?endpoint=" + s.a.Endpoint + "&profile=creds-a"
		bTLS := "s3://" + b4 + "/m?endpoint=" + front.URL + "&profile=creds-b"
		code, _, stderr := runBinary(t, bin, s.env(), "--keyring", keyring, "--max=1", "--target", bTLS, source, aTLS, "arch=amd64")
		if code == 0 || !strings.Contains(stderr, bTLS) || !strings.Contains(stderr, "does not verify") {
			t.Fatalf("an untrusted endpoint of one target: exit %d, want a failure naming it\nstderr: %s", code, stderr)
		}
		code, stdout, stderr := runBinary(t, bin, s.env(), "--keyring", keyring, "--max=1", "--target", bTLS+"&ca_bundle="+ca, source, aTLS, "arch=amd64")
		if code != 0 {
			t.Fatalf("?ca_bundle= on one target: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		samePublished(t, "site A (plain HTTP)", listBucket(t, s.a, a4, "m/"), want)
		samePublished(t, "site B (TLS, its own CA bundle)", listBucket(t, s.b, b4, "m/"), want)
	})

	t.Run("unknown parameter", func(t *testing.T) {
		code, _, stderr := runBinary(t, bin, s.env(), "--keyring", keyring, source, "s3://"+a1+"/m?endpont="+s.a.Endpoint)
		if code != 2 || !strings.Contains(stderr, `unknown parameter "endpont"`) || !strings.Contains(stderr, "profile, region, endpoint") {
			t.Errorf("exit %d, want 2 naming the parameters accepted\nstderr: %s", code, stderr)
		}
	})
}

// TestStatusVerifyGCReadTheConfiguration: status, verify and gc read $SSMIRROR_* and the config
// file as sync does: with the env file cron and systemd use (the MinIO endpoint in
// $SSMIRROR_S3_ENDPOINT) or the config file sync ran with, they reach the MinIO the sync wrote,
// not AWS.
func TestStatusVerifyGCReadTheConfiguration(t *testing.T) {
	srv := testserver.Shared(t, testserver.KindMinIO)
	s := &sites{a: srv, awsConfig: filepath.Join(t.TempDir(), "none"), awsCreds: filepath.Join(t.TempDir(), "none")}
	bin := buildBinary(t)
	fx := fixtureDir(t)
	keyring := filepath.Join(fx, "keys", "test-keyring.gpg")
	bucket := srv.NewBucket(t, "configured")
	target := "s3://" + bucket + "/m"
	creds := []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
	envFile := s.env(append(creds, "SSMIRROR_S3_ENDPOINT="+srv.Endpoint, "SSMIRROR_REGION="+srv.Region, "SSMIRROR_KEYRING="+keyring)...)
	if code, stdout, stderr := runBinary(t, bin, envFile, "--max=1", filepath.Join(fx, "stream"), target, "arch=amd64"); code != 0 {
		t.Fatalf("sync: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	conf := filepath.Join(t.TempDir(), "maas.conf")
	text := "s3-endpoint = " + srv.Endpoint + "\nregion = " + srv.Region + "\nkeyring = " + keyring + "\nmax = 1\n" +
		"source = " + filepath.Join(fx, "stream") + "\ntarget = " + target + "\n[filter]\narch=amd64\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string][]string{
		"$SSMIRROR_* variables": envFile,
		"config file":           s.env(append(creds, "SSMIRROR_CONFIG="+conf)...),
	} {
		for _, args := range [][]string{{"status", target}, {"verify", target}, {"gc", "--dry-run", target}} {
			code, stdout, stderr := runBinary(t, bin, env, args...)
			if code != 0 {
				t.Errorf("%s with the %s: exit %d\nstdout: %s\nstderr: %s", args[0], name, code, stdout, stderr)
			} else if args[0] == "verify" && !strings.Contains(stdout, "signatures checked") {
				t.Errorf("verify with the %s did not take the keyring: %s", name, stdout)
			}
		}
	}
	// The target the configuration names, TARGET left out.
	if code, stdout, stderr := runBinary(t, bin, s.env(append(creds, "SSMIRROR_CONFIG="+conf)...), "status"); code != 0 || !strings.Contains(stdout, target) {
		t.Errorf("status without TARGET: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}
