package testserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// AWSEnv is an environment for a process (the ssmirror binary) that reaches this server and
// nothing of the developer's AWS setup: the current environment without AWS_* variables
// (AWS_CA_BUNDLE kept), empty shared config files, no instance metadata, the server's
// credentials and its endpoint as AWS_ENDPOINT_URL_S3.
func (s *Server) AWSEnv(t testing.TB) []string {
	t.Helper()
	dir := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"AWS_ACCESS_KEY_ID="+s.AccessKey, "AWS_SECRET_ACCESS_KEY="+s.SecretKey,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL_S3="+s.Endpoint)
}

// IsolateAWSEnv points this process's AWS SDK configuration chain at the server's credentials
// only, for the duration of the test (t.Setenv): no shared config files, no IMDS, no endpoint or
// profile from the developer's environment. AWS_CA_BUNDLE is left as the environment has it. The
// endpoint is not set: clients name it explicitly.
func (s *Server) IsolateAWSEnv(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "AWS_") && name != "AWS_CA_BUNDLE" {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
}
