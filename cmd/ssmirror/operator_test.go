package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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

// TestNonsenseRefused runs the real binary with settings that cannot be meant and checks each
// is refused (exit 2, naming the flag) before anything is written, instead of run silently.
func TestNonsenseRefused(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	// A copy of the stream, as the source that is also the target must not be the fixture.
	own := filepath.Join(t.TempDir(), "stream")
	if err := os.CopyFS(own, os.DirFS(filepath.Join(fx, "stream"))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   func(dir string) []string
		stderr string
	}{
		{"part size below S3's smallest", func(d string) []string { return []string{keyring, "--part-size", "1", own, d + "/m"} },
			`--part-size 1B?: want at least 5MiB`},
		{"negative concurrency", func(d string) []string { return []string{keyring, "--concurrency", "-3", own, d + "/m"} },
			`--concurrency -3: want at least 1`},
		{"negative concurrency from the environment", func(d string) []string {
			return []string{keyring, own, d + "/m"}
		}, `SSMIRROR_CONCURRENCY.*--concurrency -3: want at least 1`},
		{"source is the target", func(d string) []string { return []string{keyring, own, own + "/"} },
			`target .*stream/ is the source .*stream: a mirror cannot be published into the stream it reads`},
		{"misspelt flag", func(d string) []string { return []string{keyring, "--mirrr", "x", own, d + "/m"} },
			`unknown flag: --mirrr \(did you mean --mirror\?\)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var env []string
			if strings.Contains(tt.name, "environment") {
				env = []string{"SSMIRROR_CONCURRENCY=-3"}
			}
			code, stdout, stderr := runBinary(t, bin, env, tt.args(dir)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			if !regexpMatch(t, tt.stderr, stderr) {
				t.Errorf("stderr %q does not match %q", stderr, tt.stderr)
			}
			for _, p := range []string{dir + "/m", own + "/.ssmirror"} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("a refused run wrote %s", p)
				}
			}
		})
	}
}

// TestEncryptedSigningKeyNamesThePassphrase: a signing key made with a passphrase, given without
// one, is refused (exit 2) naming both ways to give it.
func TestEncryptedSigningKeyNamesThePassphrase(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	dir := t.TempDir()
	if code, _, stderr := runBinary(t, bin, []string{"SSMIRROR_SIGNING_PASSPHRASE=s3cret"}, "keygen", "--name", "Test", "--email", "t@example.com",
		"--secret-key", dir+"/key.asc", "--keyring", dir+"/key.gpg"); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, stderr)
	}
	code, _, stderr := runBinary(t, bin, []string{"SSMIRROR_SIGNING_PASSPHRASE="}, "--keyring="+filepath.Join(fx, "keys", "test-keyring.gpg"),
		"--signing-key", dir+"/key.asc", filepath.Join(fx, "stream"), dir+"/m")
	if code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, stderr)
	}
	for _, want := range []string{"--signing-passphrase-file", "$SSMIRROR_SIGNING_PASSPHRASE"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not name %s: %s", want, stderr)
		}
	}
}

// TestConfiguredPlacesWithArgumentFilters runs the real binary the ways the guide says filters
// given as arguments replace the configured groups: with source and target in the config file,
// and with the target in $SSMIRROR_TARGET and SOURCE as an argument. And --mirror given a
// [mirror] section's name (meant --only-mirror) is refused naming --only-mirror.
func TestConfiguredPlacesWithArgumentFilters(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	keyring := filepath.Join(fx, "keys", "test-keyring.gpg")
	stream := filepath.Join(fx, "stream")
	dir := t.TempDir()
	conf := filepath.Join(dir, "maas.conf")
	write := func(path, text string) {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(conf, "keyring = "+keyring+"\nsource = "+stream+"\ntarget = "+dir+"/conf-target\n[filter]\nos=ubuntu\n")
	code, _, stderr := runBinary(t, bin, nil, "sync", "--config", conf, "os=pxelinux")
	if code != 0 {
		t.Fatalf("sync --config FILE FILTER: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(dir + "/conf-target/streams/v1/index.sjson"); err != nil {
		t.Errorf("the configured target was not published: %v", err)
	}

	code, _, stderr = runBinary(t, bin, []string{"SSMIRROR_TARGET=" + dir + "/env-target"}, "--keyring", keyring, stream, "os=pxelinux")
	if code != 0 {
		t.Fatalf("SSMIRROR_TARGET=T ssmirror SOURCE FILTER: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(dir + "/env-target/streams/v1/index.sjson"); err != nil {
		t.Errorf("$SSMIRROR_TARGET was not published: %v", err)
	}

	mconf := filepath.Join(dir, "mirrors.conf")
	write(mconf, "keyring = "+keyring+"\n[mirror stable]\nsource = "+stream+"\ntarget = "+dir+"/stable\n")
	code, _, stderr = runBinary(t, bin, nil, "--config", mconf, "--mirror", "stable")
	if code != 2 || !strings.Contains(stderr, "did you mean --only-mirror stable?") {
		t.Fatalf("--mirror stable: exit %d, want 2 naming --only-mirror: %s", code, stderr)
	}
	if _, err := os.Stat(dir + "/stable"); err == nil {
		t.Errorf("--mirror NAME ran the mirror")
	}
}

// TestFailedFileReportedOnce: in text mode a file that fails is reported once (its "transfer
// failed" line as it happens), not a second time in the final message.
func TestFailedFileReportedOnce(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	src := filepath.Join(t.TempDir(), "stream")
	if err := os.CopyFS(src, os.DirFS(filepath.Join(fx, "stream"))); err != nil {
		t.Fatal(err)
	}
	// One content file no longer matches the catalogue.
	const bad = "jammy/arm64/20250701/ga-22.04/generic/boot-initrd"
	f, err := os.OpenFile(filepath.Join(src, bad), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("corrupt")
	f.Close()
	code, _, stderr := runBinary(t, bin, nil, "--keyring="+filepath.Join(fx, "keys", "test-keyring.gpg"), src, t.TempDir()+"/m")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	reported := 0
	for line := range strings.Lines(stderr) {
		if strings.Contains(line, bad+": checksum mismatch") && !strings.Contains(line, "trying again") {
			reported++
		}
	}
	if reported != 1 {
		t.Errorf("the failed file's error is reported %d times, want once:\n%s", reported, stderr)
	}
	if !strings.Contains(stderr, "ssmirror: 1 file failed, nothing was published") {
		t.Errorf("the final line does not say what failed:\n%s", stderr)
	}
}

// TestReadOnlyCommandsJSONAndHelp: status, verify and gc with --json print a JSON object on
// stdout when they fail too (ok false, the error, the exit code), and their help does not list
// the flags only uploads use (still accepted, for a config file shared with sync).
func TestReadOnlyCommandsJSONAndHelp(t *testing.T) {
	bin := buildBinary(t)
	missing := filepath.Join(t.TempDir(), "no-mirror")
	for _, args := range [][]string{
		{"status", "--json", missing},
		{"verify", "--json", "--no-verify", missing},
		{"gc", "--json", missing},
	} {
		code, stdout, stderr := runBinary(t, bin, nil, args...)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1: %s", args, code, stderr)
		}
		var got struct {
			OK       *bool  `json:"ok"`
			Error    string `json:"error"`
			ExitCode int    `json:"exit_code"`
		}
		if err := json.Unmarshal([]byte(stdout), &got); err != nil || got.OK == nil || *got.OK || !strings.Contains(got.Error, "no-mirror") || got.ExitCode != 1 {
			t.Errorf("%s: stdout is not the failure as JSON (%v): %q", args, err, stdout)
		}
	}
	for _, cmd := range []string{"status", "verify", "gc"} {
		_, stdout, _ := runBinary(t, bin, nil, cmd, "--help")
		for _, upload := range []string{"--part-size", "--part-concurrency", "--upload-buffers", "--upload-checksum"} {
			if strings.Contains(stdout, upload) {
				t.Errorf("%s --help lists %s, which only uploads use", cmd, upload)
			}
		}
		if code, _, stderr := runBinary(t, bin, nil, cmd, "--part-size", "16MiB", missing); code != 1 {
			t.Errorf("%s --part-size: exit %d, want it accepted (1: no mirror there): %s", cmd, code, stderr)
		}
	}
}

// TestQuiet: --quiet (-q, $SSMIRROR_QUIET) prints nothing on a run that succeeds, and the
// summary and errors on one that fails, as cron users expect; with [mirror] sections too.
func TestQuiet(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	stream := filepath.Join(fx, "stream")
	dir := t.TempDir()
	for _, run := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"--quiet", keyring, stream, dir + "/a", "os=pxelinux"}},
		{nil, []string{"-q", keyring, stream, dir + "/a", "os=pxelinux"}}, // nothing to do: still nothing
		{[]string{"SSMIRROR_QUIET=true"}, []string{keyring, stream, dir + "/b", "os=pxelinux"}},
	} {
		code, stdout, stderr := runBinary(t, bin, run.env, run.args...)
		if code != 0 || stdout != "" || stderr != "" {
			t.Errorf("%v %v: exit %d, want 0 and no output:\nstdout: %s\nstderr: %s", run.env, run.args, code, stdout, stderr)
		}
	}
	conf := filepath.Join(dir, "mirrors.conf")
	if err := os.WriteFile(conf, []byte("keyring = "+filepath.Join(fx, "keys", "test-keyring.gpg")+"\n[mirror one]\nsource = "+stream+"\ntarget = "+dir+"/c\n[filter]\nos=pxelinux\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runBinary(t, bin, nil, "-q", "--config", conf); code != 0 || stdout != "" || stderr != "" {
		t.Errorf("-q with [mirror] sections: exit %d, want 0 and no output:\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	// A failing run: the summary and the error.
	os.Mkdir(dir+"/empty", 0o755)
	code, stdout, stderr := runBinary(t, bin, nil, "-q", keyring, dir+"/empty", dir+"/d")
	if code != 1 || !strings.Contains(stderr, "index.sjson") {
		t.Errorf("a failed quiet run: exit %d, want 1 with its error:\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	src := filepath.Join(dir, "bad")
	if err := os.CopyFS(src, os.DirFS(stream)); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(src, "jammy/arm64/20250701/ga-22.04/generic/boot-initrd"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("corrupt")
	f.Close()
	code, stdout, stderr = runBinary(t, bin, nil, "-q", keyring, src, dir+"/e")
	if code != 1 || !strings.Contains(stdout, "FAILED, nothing published") || !strings.Contains(stderr, "checksum mismatch") {
		t.Errorf("a failed quiet run: exit %d, want 1 with the summary and the error:\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if strings.Contains(stderr, "trying again") {
		t.Errorf("a quiet run printed its retries:\n%s", stderr)
	}
}
