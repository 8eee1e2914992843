package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"
)

// A config file of [mirror] sections, bundled and named by $SSMIRROR_CONFIG: one invocation runs
// each section; the one that fails (no such bucket) does not stop the other, which publishes;
// the invocation fails naming it. The event picks sections.
func TestHandlerRunsMirrorSections(t *testing.T) {
	e := setupMinIO(t)
	for _, v := range []string{"SSMIRROR_SOURCE", "SSMIRROR_TARGET", "SSMIRROR_FILTERS", "SSMIRROR_MAX"} {
		t.Setenv(v, "") // each section names its own
	}
	conf := filepath.Join(t.TempDir(), "mirrors.conf")
	text := "max = 1\n" +
		"\n[mirror broken]\nsource = " + repoFile(t, "stream") + "\ntarget = s3://no-such-bucket-" + strings.ToLower(e.bucket) + "/x\n[filter]\nos~(grub*|pxelinux)\n" +
		"\n[mirror images]\nsource = " + repoFile(t, "stream") + "\ntarget = s3://" + e.bucket + "/images\n[filter]\narch=amd64\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSMIRROR_CONFIG", conf)
	ctx := context.Background()

	_, err := invokeRaw(t, ctx, scheduledEvent)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 mirrors failed") || !strings.Contains(err.Error(), "mirror broken: ") || strings.Contains(err.Error(), "mirror images") {
		t.Fatalf("scheduled run: %v, want a failure naming the broken mirror only", err)
	}
	if _, ok := e.objects(t)["images/streams/v1/index.sjson"]; !ok {
		t.Fatalf("the good mirror did not publish: %v", keys(e.objects(t)))
	}

	out, err := invokeRaw(t, ctx, `{"mirrors": ["images"]}`)
	if err != nil {
		t.Fatalf("images only: %v", err)
	}
	var res MirrorsResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !res.OK || len(res.Mirrors) != 1 || res.Mirrors[0].Mirror != "images" || res.Mirrors[0].Summary == nil || res.Mirrors[0].Summary.ItemsKept == 0 || res.Mirrors[0].Summary.FilesFetched != 0 {
		t.Errorf("images only, up to date: %s", out)
	}

	if _, err := invokeRaw(t, ctx, `{"mirrors": ["image"]}`); err == nil || !strings.Contains(err.Error(), "no [mirror image] in "+conf) {
		t.Errorf("an unknown mirror in the event: %v", err)
	}
	// A mistake in any section stops the invocation before anything runs.
	bad := strings.Replace(text, "/images\n", "/images\nmax-versions = 2\n", 1)
	if err := os.WriteFile(conf, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := invokeRaw(t, ctx, `{"mirrors": ["broken"]}`); err == nil || !strings.Contains(err.Error(), conf+":12: ") {
		t.Errorf("a mistake in a section: %v, want it named %s:12", err, conf)
	}
}

// invokeRaw runs the handler as the Lambda runtime does and returns its JSON result.
func invokeRaw(t *testing.T, ctx context.Context, payload string) ([]byte, error) {
	t.Helper()
	return lambda.NewHandler(handle).Invoke(ctx, []byte(payload))
}

// A [mirror] section with two target lines is a fan-out run: one invocation publishes both.
func TestHandlerMirrorSectionWithSeveralTargets(t *testing.T) {
	e := setupMinIO(t)
	for _, v := range []string{"SSMIRROR_SOURCE", "SSMIRROR_TARGET", "SSMIRROR_FILTERS", "SSMIRROR_MAX"} {
		t.Setenv(v, "") // the section names its own
	}
	conf := filepath.Join(t.TempDir(), "mirrors.conf")
	text := "max = 1\n" +
		"\n[mirror images]\nsource = " + repoFile(t, "stream") + "\ntarget = s3://" + e.bucket + "/images\ntarget = s3://" + e.bucket + "/images2\n[filter]\narch=amd64\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSMIRROR_CONFIG", conf)
	if out, err := invokeRaw(t, t.Context(), `{"mirrors": ["images"]}`); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	objs := e.objects(t)
	for _, key := range []string{"images/streams/v1/index.sjson", "images2/streams/v1/index.sjson"} {
		if _, ok := objs[key]; !ok {
			t.Errorf("%s not published: %v", key, keys(objs))
		}
	}
}
