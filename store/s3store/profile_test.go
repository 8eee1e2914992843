package s3store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store/s3store"
)

// TestOwnProfileOverTheEnvironment: a location naming its own profile (?profile=site-a) is
// reached at the profile's endpoint_url with the profile's keys and region, even when the job's
// environment holds AWS_ENDPOINT_URL, AWS_REGION and keys meant for another service (the
// default chain's target of a fan-out). The SDK puts the environment first: every such site
// went to the environment's endpoint (refused there, or 403 with its own keys), as running the
// operator guide's many-sites command with AWS_ENDPOINT_URL set showed.
func TestOwnProfileOverTheEnvironment(t *testing.T) {
	srv := testserver.Shared(t, testserver.KindMinIO)
	bucket := srv.NewBucket(t, t.Name())
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("AWS_CONFIG_FILE", write("config", fmt.Sprintf("[profile site-a]\nendpoint_url = %s\nregion = %s\n", srv.Endpoint, srv.Region)))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", write("credentials", fmt.Sprintf("[site-a]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.SecretKey)))
	// The environment of a job whose default target is another service, which is not there.
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_REGION", "eu-west-3")
	t.Setenv("AWS_ACCESS_KEY_ID", "someone-else")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "someone-elses-secret")

	for _, c := range []struct {
		name    string
		own     bool
		reaches bool
	}{
		{"the location's own profile", true, true},
		// The SDK's own order, which the global --profile keeps (documented): the environment
		// first. This is what every ?profile= location did before.
		{"a default profile", false, false},
	} {
		client, err := s3store.NewClient(t.Context(), s3store.Options{Profile: "site-a", OwnProfile: c.own})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second) // the refused endpoint is retried
		_, err = client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
		cancel()
		if (err == nil) != c.reaches {
			t.Errorf("%s: HeadBucket %s: %v (want reached: %v)", c.name, bucket, err, c.reaches)
		}
		if ep := client.Options().BaseEndpoint; c.own && (ep == nil || *ep != srv.Endpoint) {
			t.Errorf("%s: endpoint %v, want the profile's %s", c.name, ep, srv.Endpoint)
		}
		if r := client.Options().Region; c.own && r != srv.Region {
			t.Errorf("%s: region %s, want the profile's %s", c.name, r, srv.Region)
		}
	}
}
