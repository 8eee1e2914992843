package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/sync"
)

func TestMain(m *testing.M) { os.Exit(testserver.RunMain(m)) }

// A scheduled event as EventBridge sends it: the handler ignores its content.
const scheduledEvent = `{
  "version": "0",
  "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
  "detail-type": "Scheduled Event",
  "source": "aws.events",
  "account": "123456789012",
  "time": "2025-07-01T06:15:00Z",
  "region": "eu-west-1",
  "resources": ["arn:aws:events:eu-west-1:123456789012:rule/ssmirror-every-6h"],
  "detail": {}
}`

// repoFile is a file of the repository's testdata.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// clearSSMirrorEnv unsets every SSMIRROR_ variable of the developer's environment for the test.
func clearSSMirrorEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SSMIRROR_") {
			t.Setenv(name, "")
		}
	}
}

type lambdaEnv struct {
	srv    *testserver.Server
	mc     *minio.Client
	bucket string
}

// setupMinIO configures the function's environment for a sync of the committed fixture stream
// (amd64 only, newest version) into a new bucket of the shared MinIO, under maas/stable.
func setupMinIO(t *testing.T) *lambdaEnv {
	t.Helper()
	srv := testserver.Shared(t, testserver.KindMinIO)
	srv.IsolateAWSEnv(t)
	clearSSMirrorEnv(t)
	bucket := srv.NewBucket(t, t.Name())
	keyring, err := os.ReadFile(repoFile(t, "keys/test-keyring.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSMIRROR_SOURCE", repoFile(t, "stream"))
	t.Setenv("SSMIRROR_TARGET", "s3://"+bucket+"/maas/stable")
	t.Setenv("SSMIRROR_S3_ENDPOINT", srv.Endpoint)
	t.Setenv("SSMIRROR_REGION", srv.Region)
	t.Setenv("SSMIRROR_KEYRING_DATA", base64.StdEncoding.EncodeToString(keyring))
	t.Setenv("SSMIRROR_FILTERS", "arch=amd64")
	t.Setenv("SSMIRROR_MAX", "1")
	return &lambdaEnv{srv: srv, mc: srv.MinioClient(t), bucket: bucket}
}

// invoke runs the handler the way the Lambda runtime does: JSON payload in, JSON result out.
func invoke(t *testing.T, ctx context.Context, payload string) (*Summary, error) {
	t.Helper()
	out, err := lambda.NewHandler(handle).Invoke(ctx, []byte(payload))
	if err != nil {
		return nil, err
	}
	t.Logf("result: %s", out)
	var s Summary
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("the result is not a JSON summary: %v\n%s", err, out)
	}
	return &s, nil
}

// objects lists the bucket: key → ETag.
func (e *lambdaEnv) objects(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for obj := range e.mc.ListObjects(t.Context(), e.bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("listing %s: %v", e.bucket, obj.Err)
		}
		out[obj.Key] = obj.ETag
	}
	return out
}

func (e *lambdaEnv) read(t *testing.T, key string) []byte {
	t.Helper()
	obj, err := e.mc.GetObject(t.Context(), e.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

func TestHandlerSyncsIntoMinIO(t *testing.T) {
	e := setupMinIO(t)
	ctx := t.Context()

	// A dry run plans the work and changes nothing.
	dry, err := invoke(t, ctx, `{"dry_run": true}`)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if !dry.DryRun || dry.ItemsAdded == 0 || dry.FilesToFetch == 0 || len(dry.MetadataWritten) != 0 {
		t.Errorf("dry run summary: %+v", dry)
	}
	if objs := e.objects(t); len(objs) != 0 {
		t.Fatalf("a dry run wrote %d objects: %v", len(objs), objs)
	}

	// The scheduled run mirrors the selection.
	sum, err := invoke(t, ctx, scheduledEvent)
	if err != nil {
		t.Fatalf("scheduled run: %v", err)
	}
	if sum.DryRun || sum.ItemsAdded != dry.ItemsAdded || sum.FilesFetched != dry.FilesToFetch || sum.BytesFetched != dry.BytesToFetch {
		t.Errorf("run summary %+v does not match the dry run's plan %+v", sum, dry)
	}
	if !contains(sum.MetadataWritten, "streams/v1/index.sjson") {
		t.Errorf("metadata written %v lacks the index", sum.MetadataWritten)
	}
	objs := e.objects(t)
	var content int
	for key := range objs {
		rel, ok := strings.CutPrefix(key, "maas/stable/")
		if !ok {
			if !strings.HasPrefix(key, "maas/stable/.ssmirror/") {
				t.Errorf("object %s outside the target prefix", key)
			}
			continue
		}
		if strings.HasPrefix(rel, ".ssmirror/") {
			continue
		}
		if strings.Contains(rel, "/arm64/") {
			t.Errorf("%s landed although the filter is arch=amd64", key)
		}
		want, err := os.ReadFile(filepath.Join(repoFile(t, "stream"), filepath.FromSlash(rel)))
		if err != nil {
			t.Errorf("%s: no such file in the fixture: %v", key, err)
			continue
		}
		if !bytes.Equal(e.read(t, key), want) {
			t.Errorf("%s differs from the fixture's %s", key, rel)
		}
		if !strings.HasPrefix(rel, "streams/") {
			content++
		}
	}
	if content != sum.FilesFetched {
		t.Errorf("%d content objects in the bucket, the summary says %d fetched", content, sum.FilesFetched)
	}
	if _, ok := objs["maas/stable/streams/v1/index.sjson"]; !ok {
		t.Errorf("no index in the bucket: %v", keys(objs))
	}

	// The next scheduled run finds nothing to do.
	again, err := invoke(t, ctx, scheduledEvent)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if again.ItemsAdded != 0 || again.FilesFetched != 0 || len(again.MetadataWritten) != 0 || again.ItemsKept != sum.ItemsAdded {
		t.Errorf("second run did work: %+v", again)
	}

	// A dry run with the event's own filters plans arm64 items and changes nothing.
	before := e.objects(t)
	arm, err := invoke(t, ctx, `{"filters": ["arch=arm64"], "dry_run": true}`)
	if err != nil {
		t.Fatalf("dry run with event filters: %v", err)
	}
	if arm.ItemsAdded == 0 || arm.FilesToFetch == 0 {
		t.Errorf("the event's filters were not used: %+v", arm)
	}
	after := e.objects(t)
	if len(after) != len(before) {
		t.Errorf("dry run changed the bucket: %d objects before, %d after", len(before), len(after))
	}
	for k, etag := range before {
		if after[k] != etag && !strings.Contains(k, "/.ssmirror/") {
			t.Errorf("dry run changed %s", k)
		}
	}
}

// fakeCloudFront answers CloudFront's CreateInvalidation call for distribution E2EXAMPLE only
// and records the paths of each request.
type fakeCloudFront struct {
	paths [][]string
}

func (f *fakeCloudFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var batch struct {
		Paths []string `xml:"Paths>Items>Path"`
		Ref   string   `xml:"CallerReference"`
	}
	if err := xml.NewDecoder(r.Body).Decode(&batch); err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f.paths = append(f.paths, batch.Paths)
	w.Header().Set("Content-Type", "text/xml")
	if r.URL.Path != "/2020-05-31/distribution/E2EXAMPLE/invalidation" {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchDistribution</Code><Message>The specified distribution does not exist.</Message></Error></ErrorResponse>`)
		return
	}
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `<Invalidation><Id>I%dEXAMPLE</Id><Status>InProgress</Status><CreateTime>2025-07-01T12:00:00Z</CreateTime><InvalidationBatch><Paths><Quantity>%d</Quantity><Items><Path>%s</Path></Items></Paths><CallerReference>%s</CallerReference></InvalidationBatch></Invalidation>`,
		len(f.paths), len(batch.Paths), strings.Join(batch.Paths, "</Path><Path>"), batch.Ref)
}

func TestHandlerInvalidatesCloudFront(t *testing.T) {
	setupMinIO(t)
	fake := &fakeCloudFront{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_CLOUDFRONT", srv.URL) // read by the SDK's configuration chain
	t.Setenv("SSMIRROR_CLOUDFRONT_DISTRIBUTION", "E2EXAMPLE")

	sum, err := invoke(t, t.Context(), scheduledEvent)
	if err != nil {
		t.Fatal(err)
	}
	if sum.CloudFrontInvalidation != "I1EXAMPLE" {
		t.Errorf("summary's invalidation = %q, want the fake's I1EXAMPLE", sum.CloudFrontInvalidation)
	}
	if len(fake.paths) != 1 || strings.Join(fake.paths[0], " ") != "/maas/stable/streams/v1/*" {
		t.Errorf("invalidations sent: %q, want one of /maas/stable/streams/v1/*", fake.paths)
	}

	// Nothing new published: no invalidation.
	sum, err = invoke(t, t.Context(), scheduledEvent)
	if err != nil {
		t.Fatal(err)
	}
	if len(fake.paths) != 1 || sum.CloudFrontInvalidation != "" {
		t.Errorf("a run that wrote no metadata invalidated: %q, %q", fake.paths, sum.CloudFrontInvalidation)
	}
}

func TestHandlerReportsFailedInvalidation(t *testing.T) {
	e := setupMinIO(t)
	srv := httptest.NewServer(&fakeCloudFront{})
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_CLOUDFRONT", srv.URL)
	t.Setenv("SSMIRROR_CLOUDFRONT_DISTRIBUTION", "EWRONG")
	t.Setenv("SSMIRROR_CLOUDFRONT_PATH_PREFIX", "/images/")

	_, err := invoke(t, t.Context(), scheduledEvent)
	if err == nil || !strings.HasPrefix(err.Error(), "mirrored (") || !strings.Contains(err.Error(), "EWRONG") || !strings.Contains(err.Error(), "/images/streams/v1/*") {
		t.Fatalf("err = %v, want mirrored, but … naming the distribution and the paths", err)
	}
	if _, ok := e.objects(t)["maas/stable/streams/v1/index.sjson"]; !ok {
		t.Error("the publish did not happen")
	}
}

// copyTree copies the directory tree at from into to.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A run that fails part-way (as one stopped by the time limit does) publishes nothing, and the
// next run keeps the files that arrived instead of fetching them again.
func TestHandlerNextRunCarriesOn(t *testing.T) {
	e := setupMinIO(t)
	src := t.TempDir()
	copyTree(t, repoFile(t, "stream"), src)
	t.Setenv("SSMIRROR_SOURCE", src)
	bad := filepath.Join(src, "noble", "amd64", "20250718", "squashfs")
	good, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(good)
	corrupt[0] ^= 0xff // same size, wrong sha256
	if err := os.WriteFile(bad, corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(t, t.Context(), scheduledEvent); err == nil {
		t.Fatal("a run with a corrupt source file succeeded")
	}
	var arrived int
	for k := range e.objects(t) {
		if strings.Contains(k, "/streams/") {
			t.Errorf("the failed run published %s", k)
		}
		if !strings.Contains(k, "/.ssmirror/") {
			arrived++
		}
	}
	if arrived == 0 {
		t.Fatal("no file arrived before the failure: the test shows nothing")
	}

	if err := os.WriteFile(bad, good, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := invoke(t, t.Context(), scheduledEvent)
	if err != nil {
		t.Fatal(err)
	}
	// The files that arrived are recorded (or, failing that, found and adopted): only the
	// corrupt one is fetched again.
	if sum.FilesFetched != 1 || sum.FilesToFetch != 1 || len(sum.MetadataWritten) == 0 {
		t.Errorf("next run fetched %d files (planned %d), want only the one that failed (%d had arrived): %+v", sum.FilesFetched, sum.FilesToFetch, arrived, sum)
	}
}

func TestHandlerRefusesWrongKeyring(t *testing.T) {
	e := setupMinIO(t)
	other, err := os.ReadFile(repoFile(t, "keys/other-keyring.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSMIRROR_KEYRING_DATA", base64.StdEncoding.EncodeToString(other))
	if _, err := invoke(t, t.Context(), scheduledEvent); err == nil {
		t.Fatal("a run whose keyring does not hold the signer's key succeeded")
	}
	for k := range e.objects(t) {
		if strings.Contains(k, "streams/") || !strings.Contains(k, "/.ssmirror/") {
			t.Errorf("a refused run left %s", k)
		}
	}
}

func TestHandlerStopsWithinTheSafetyMargin(t *testing.T) {
	e := setupMinIO(t)
	// The invocation has 30 s left, less than the default 60 s margin: nothing starts.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := invoke(t, ctx, scheduledEvent)
	if err == nil || !strings.Contains(err.Error(), "SSMIRROR_SAFETY_MARGIN") {
		t.Fatalf("err = %v, want the safety margin refusal", err)
	}
	if objs := e.objects(t); len(objs) != 0 {
		t.Errorf("the refused run wrote %v", keys(objs))
	}
}

func TestRunContext(t *testing.T) {
	deadline := time.Now().Add(time.Hour)
	parent, cancel := context.WithDeadline(t.Context(), deadline)
	defer cancel()
	ctx, stop, err := runContext(parent, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	got, ok := ctx.Deadline()
	if !ok || !got.Equal(deadline.Add(-90*time.Second)) {
		t.Errorf("run deadline = %v (%v), want the invocation's minus 90s: %v", got, ok, deadline.Add(-90*time.Second))
	}

	ctx, stop, err = runContext(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if _, ok := ctx.Deadline(); ok {
		t.Error("a context without a deadline got one")
	}

	if _, _, err := runContext(parent, 2*time.Hour); err == nil {
		t.Error("no error when the margin exceeds the time left")
	}
}

func TestReadConfigErrors(t *testing.T) {
	base := map[string]string{
		"SSMIRROR_SOURCE": "https://images.maas.io/ephemeral-v3/stable/",
		"SSMIRROR_TARGET": "s3://bucket/prefix",
	}
	for _, tc := range []struct {
		name string
		set  map[string]string
		want string // in the error
	}{
		{"no source", map[string]string{"SSMIRROR_SOURCE": ""}, "SSMIRROR_SOURCE"},
		{"directory target", map[string]string{"SSMIRROR_TARGET": "/tmp/mirror"}, "SSMIRROR_TARGET"},
		{"bad scheme", map[string]string{"SSMIRROR_SOURCE": "ftp://x/"}, "SSMIRROR_SOURCE"},
		{"s3 with one slash", map[string]string{"SSMIRROR_TARGET": "s3:/bucket/prefix"}, "did you mean s3://bucket/prefix"},
		{"bad max", map[string]string{"SSMIRROR_MAX": "one"}, "SSMIRROR_MAX"},
		{"bad bool", map[string]string{"SSMIRROR_PRUNE": "yes please"}, "SSMIRROR_PRUNE"},
		{"bad duration", map[string]string{"SSMIRROR_GC_GRACE": "soon"}, "SSMIRROR_GC_GRACE"},
		{"bad upload checksum", map[string]string{"SSMIRROR_UPLOAD_CHECKSUM": "sha1"}, "SSMIRROR_UPLOAD_CHECKSUM"},
		{"duration without a unit", map[string]string{"SSMIRROR_LOCK_TIMEOUT": "30"}, "$SSMIRROR_LOCK_TIMEOUT: invalid argument \"30\" for \"--lock-timeout\" flag: want a number and a unit"},
		{"max 0", map[string]string{"SSMIRROR_MAX": "0"}, "$SSMIRROR_MAX: --max=0 is refused"},
		{"bad filter", map[string]string{"SSMIRROR_FILTERS": "arch"}, "SSMIRROR_FILTERS"},
		{"empty group", map[string]string{"SSMIRROR_FILTERS": "arch=amd64;"}, "SSMIRROR_FILTERS"},
		{"two keyrings", map[string]string{"SSMIRROR_KEYRING": "k.gpg", "SSMIRROR_KEYRING_DATA": "AAAA"}, "not both"},
		{"keyring not base64", map[string]string{"SSMIRROR_KEYRING_DATA": "***"}, "SSMIRROR_KEYRING_DATA"},
		{"keyring garbage", map[string]string{"SSMIRROR_KEYRING_DATA": base64.StdEncoding.EncodeToString([]byte("not a key"))}, "SSMIRROR_KEYRING_DATA"},
		{"missing keyring file", map[string]string{"SSMIRROR_KEYRING": "/nonexistent/k.gpg"}, "/nonexistent/k.gpg"},
		{"negative margin", map[string]string{"SSMIRROR_SAFETY_MARGIN": "-1s"}, "SSMIRROR_SAFETY_MARGIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			envm := map[string]string{}
			for k, v := range base {
				envm[k] = v
			}
			for k, v := range tc.set {
				envm[k] = v
			}
			_, err := readConfig(func(k string) (string, bool) { v, ok := envm[k]; return v, ok })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestReadConfig(t *testing.T) {
	keyring, err := os.ReadFile(repoFile(t, "keys/test-keyring.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	envm := map[string]string{
		"SSMIRROR_SOURCE":                  "https://images.maas.io/ephemeral-v3/stable/",
		"SSMIRROR_TARGET":                  "s3://bucket/maas/stable",
		"SSMIRROR_FILTERS":                 "arch=amd64 release~^(jammy|noble)$; os~^grub",
		"SSMIRROR_KEYRING_DATA":            base64.StdEncoding.EncodeToString(keyring),
		"SSMIRROR_MAX":                     "2",
		"SSMIRROR_PRUNE":                   "true",
		"SSMIRROR_GC_GRACE":                "2d",
		"SSMIRROR_SAFETY_MARGIN":           "90s",
		"SSMIRROR_CLOUDFRONT_DISTRIBUTION": "E2EXAMPLE",
	}
	c, err := readConfig(func(k string) (string, bool) { v, ok := envm[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if dst := c.job.Targets[0].Loc; len(c.job.Targets) != 1 || dst.Bucket != "bucket" || dst.Prefix != "maas/stable" || c.job.Source.Loc.Kind != "http" {
		t.Errorf("locations: %+v", c.job)
	}
	if len(c.groups) != 2 || len(c.groups[0]) != 2 || len(c.groups[1]) != 1 {
		t.Errorf("filter groups: %v", c.groups)
	}
	if c.keyring == nil || c.flags.Max != 2 || !c.flags.Prune || c.flags.GCGrace != 48*time.Hour || c.margin != 90*time.Second || c.flags.CFDistribution != "E2EXAMPLE" {
		t.Errorf("config: %+v", c)
	}
	if c.flags.Concurrency != 4 || c.flags.LockTimeout != 0 || c.flags.LockTTL != sync.DefaultLockTTL || c.flags.Keep || c.flags.DryRun {
		t.Errorf("unset settings are not their defaults: %+v", c)
	}
	envm["SSMIRROR_LOCK_TTL"] = "90s"
	if c, err := readConfig(func(k string) (string, bool) { v, ok := envm[k]; return v, ok }); err != nil || c.flags.LockTTL != 90*time.Second {
		t.Errorf("SSMIRROR_LOCK_TTL=90s: %v, %v", c, err)
	}
	envm["SSMIRROR_LOCK_TTL"] = "10ms"
	if _, err := readConfig(func(k string) (string, bool) { v, ok := envm[k]; return v, ok }); err == nil || !strings.Contains(err.Error(), "SSMIRROR_LOCK_TTL") {
		t.Errorf("SSMIRROR_LOCK_TTL=10ms: %v, want an error naming it", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestHandlerSeveralTargets: $SSMIRROR_TARGET naming two buckets publishes both in one
// invocation; the result has a summary per target.
func TestHandlerSeveralTargets(t *testing.T) {
	e := setupMinIO(t)
	second := &lambdaEnv{srv: e.srv, mc: e.mc, bucket: e.srv.NewBucket(t, t.Name()+"-b")}
	t.Setenv("SSMIRROR_TARGET", "s3://"+e.bucket+"/maas/stable, s3://"+second.bucket+"/maas/stable")
	sum, err := invoke(t, t.Context(), scheduledEvent)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK || len(sum.Targets) != 2 || sum.UpstreamBytes == nil || *sum.UpstreamBytes == 0 {
		t.Fatalf("summary: %+v", sum)
	}
	for i, env := range []*lambdaEnv{e, second} {
		ts := sum.Targets[i]
		if !ts.OK || ts.Target != "s3://"+env.bucket+"/maas/stable" || ts.FilesFetched == 0 {
			t.Errorf("target %d: %+v", i, ts)
		}
		if _, ok := env.objects(t)["maas/stable/streams/v1/index.sjson"]; !ok {
			t.Errorf("%s: not published", env.bucket)
		}
	}
}

// TestHandlerTargetsOnTwoServices: $SSMIRROR_TARGET names two buckets on two S3 services with
// different credentials (two MinIO servers), each reached with its own settings: one by
// ?endpoint= with a profile holding its keys, the other by ?profile= alone (the profile's
// endpoint_url). No global endpoint or credentials are set. Both are published in one
// invocation.
func TestHandlerTargetsOnTwoServices(t *testing.T) {
	a, b := testserver.MinIO(t), testserver.MinIO(t)
	a.IsolateAWSEnv(t)
	clearSSMirrorEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	dir := t.TempDir()
	config := "[profile creds-a]\nregion = " + a.Region + "\n\n[profile site-b]\nendpoint_url = " + b.Endpoint + "\nregion = " + b.Region + "\n"
	creds := "[creds-a]\naws_access_key_id = " + a.AccessKey + "\naws_secret_access_key = " + a.SecretKey + "\n\n" +
		"[site-b]\naws_access_key_id = " + b.AccessKey + "\naws_secret_access_key = " + b.SecretKey + "\n"
	for name, text := range map[string]string{"config": config, "credentials": creds} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	keyring, err := os.ReadFile(repoFile(t, "keys/test-keyring.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	ea := &lambdaEnv{srv: a, mc: a.MinioClient(t), bucket: a.NewBucket(t, "site-a")}
	eb := &lambdaEnv{srv: b, mc: b.MinioClient(t), bucket: b.NewBucket(t, "site-b")}
	aLoc := "s3://" + ea.bucket + "/maas?endpoint=" + a.Endpoint + "&profile=creds-a"
	bLoc := "s3://" + eb.bucket + "/maas?profile=site-b"
	t.Setenv("SSMIRROR_SOURCE", repoFile(t, "stream"))
	t.Setenv("SSMIRROR_TARGET", aLoc+" "+bLoc)
	t.Setenv("SSMIRROR_KEYRING_DATA", base64.StdEncoding.EncodeToString(keyring))
	t.Setenv("SSMIRROR_FILTERS", "arch=amd64")
	t.Setenv("SSMIRROR_MAX", "1")
	sum, err := invoke(t, t.Context(), scheduledEvent)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK || len(sum.Targets) != 2 || sum.Targets[0].Target != aLoc || sum.Targets[1].Target != bLoc {
		t.Fatalf("summary: %+v", sum)
	}
	for _, e := range []*lambdaEnv{ea, eb} {
		if _, ok := e.objects(t)["maas/streams/v1/index.sjson"]; !ok {
			t.Errorf("%s on %s: not published: %v", e.bucket, e.srv.Endpoint, keys(e.objects(t)))
		}
	}
}

// TestHandlerRefusesAMisspeltEventKey: {"dry-run": true} (a hyphen for the underscore) is
// refused, naming the key meant, and nothing is published: it must not become a real run.
func TestHandlerRefusesAMisspeltEventKey(t *testing.T) {
	e := setupMinIO(t)
	_, err := invoke(t, t.Context(), `{"dry-run": true}`)
	if err == nil || !strings.Contains(err.Error(), "did you mean dry_run?") {
		t.Errorf("err = %v, want the misspelt key refused", err)
	}
	if objs := e.objects(t); len(objs) != 0 {
		t.Errorf("published after a refused event: %v", keys(objs))
	}
}
