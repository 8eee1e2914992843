package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/testserver"
)

// TestS3ConfigMistakes runs the real binary on each S3 configuration mistake an operator makes
// and checks that it exits 2 (a configuration error, as the README promises) with a message
// naming what to fix, not the SDK's text with exit 1 — and that an endpoint where nothing
// listens fails at once instead of after the SDK's retries.
func TestS3ConfigMistakes(t *testing.T) {
	bin := buildBinary(t)
	srv := testserver.MinIO(t)
	bucket := srv.NewBucket(t, "mistakes")
	srv.IsolateAWSEnv(t)
	fx := fixtureDir(t)
	stream := filepath.Join(fx, "stream")
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	ep := "--s3-endpoint=" + srv.Endpoint
	region := "--region=" + srv.Region

	tests := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stderr string
	}{
		{"endpoint without a scheme", nil,
			[]string{keyring, "--s3-endpoint=" + srv.Endpoint[len("http://"):], stream, "s3://" + bucket + "/m"},
			2, `--s3-endpoint 127\.0\.0\.1:\d+: want an http:// or https:// URL`},
		{"no such profile", nil,
			[]string{keyring, ep, "--profile=nosuch", stream, "s3://" + bucket + "/m"},
			2, `no profile nosuch in ~/\.aws/config.*fix --profile, AWS_PROFILE`},
		{"AWS_CA_BUNDLE names no file", []string{"AWS_CA_BUNDLE=/nonexistent/ca.pem"},
			[]string{keyring, ep, region, stream, "s3://" + bucket + "/m"},
			2, `AWS_CA_BUNDLE=/nonexistent/ca\.pem: no such file or directory`},
		{"nothing listening", nil,
			[]string{keyring, "--s3-endpoint=http://127.0.0.1:1", region, stream, "s3://" + bucket + "/m"},
			1, `S3 endpoint http://127\.0\.0\.1:1: nothing is listening at 127\.0\.0\.1:1 \(connection refused\)`},
		{"no such bucket", nil,
			[]string{keyring, ep, region, stream, "s3://" + bucket + "-missing/m"},
			2, `create the bucket first`},
		{"wrong secret through status", []string{"AWS_SECRET_ACCESS_KEY=wrong-secret"},
			[]string{"status", ep, region, "s3://" + bucket + "/m"},
			2, `refused these credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the profile named by --profile`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runBinary(t, bin, tt.env, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if !regexpMatch(t, tt.stderr, stderr) {
				t.Errorf("stderr %q does not match %q", stderr, tt.stderr)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v: a configuration mistake must be reported at once", d)
			}
		})
	}
}
