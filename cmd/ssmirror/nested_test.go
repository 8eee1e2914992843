package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/targettest"
)

// nestedCmdTrials is how many times TestNestedMirrorsFromOneConfig runs each kind of target.
const nestedCmdTrials = 2

// TestNestedMirrorsFromOneConfig: one config file, two [mirror] sections, the second's target
// nested inside the first's (DIR/lxd inside DIR; s3://b/m/lxd inside s3://b/m), run at once by
// the binary with --parallel-mirrors 2. The inner mirror's large file arrives slowly (its
// bwlimit; in S3 a multipart upload of 5 MiB parts); the outer one reads its catalogue late (its
// upstream answers index.sjson after a pause), then fetches, and so cleans up leftovers while
// the inner one's write is in flight.
// Both succeed, and the inner mirror passes verify --deep (every byte read back and hashed).
// Before, the outer run removed the inner run's temporary files (aborted its uploads) and the
// inner run failed.
func TestNestedMirrorsFromOneConfig(t *testing.T) {
	bin := buildBinary(t)
	signer, keyringPath := testKeys(t)
	gen := func(seed int64, squashfs int64) *streamtest.Stream {
		s, err := streamtest.Generate(streamtest.Config{
			Releases: []string{"noble"}, Arches: []string{"amd64"}, Versions: []string{"20250701"},
			Kernels: []string{"ga"}, Seed: seed, SquashfsSize: squashfs,
		}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	outerUp, innerUp := gen(1, 0), gen(2, 24<<20+5)
	late := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/streams/v1/index.sjson" {
			time.Sleep(7 * time.Second)
		}
		outerUp.Handler().ServeHTTP(w, r)
	})
	outerSrv := httptest.NewServer(late)
	defer outerSrv.Close()
	innerSrv := httptest.NewServer(innerUp.Handler())
	defer innerSrv.Close()
	for _, kind := range []targettest.Kind{targettest.Directory, targettest.MinIO} {
		t.Run(string(kind), func(t *testing.T) {
			bad := 0
			for trial := range nestedCmdTrials {
				tg := targettest.New(t, kind, targettest.Options{Prefix: "m/"})
				outer, inner, env := tg.Location, tg.Location+"/lxd", []string(nil)
				if kind == targettest.Directory {
					outer = filepath.Join(tg.Dir, "m")
					inner = filepath.Join(outer, "lxd")
				} else {
					env = tg.Server.AWSEnv(t)
				}
				conf := filepath.Join(t.TempDir(), "mirrors.conf")
				text := "keyring = " + keyringPath + "\n" +
					"[mirror outer]\nsource = " + outerSrv.URL + "/\ntarget = " + outer + "\n" +
					"[mirror inner]\nsource = " + innerSrv.URL + "/\ntarget = " + inner + "\nbwlimit = 2MiB\npart-size = 5MiB\n"
				if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				code, stdout, stderr := runBinary(t, bin, env, "sync", "--config", conf, "--parallel-mirrors", "2")
				ok := code == 0 && strings.Contains(stdout, "== 2 mirrors: 2 ok")
				if !ok {
					t.Errorf("trial %d: exit %d\nstdout:\n%s\nstderr:\n%s", trial, code, stdout, stderr)
				}
				code, stdout, stderr = runBinary(t, bin, env, "verify", "--deep", "--keyring", keyringPath, inner)
				if code != 0 {
					t.Errorf("trial %d: verify --deep of the inner mirror: exit %d\n%s%s", trial, code, stdout, stderr)
					ok = false
				}
				if !ok {
					bad++
				}
			}
			t.Logf("%s: %d of %d trials went wrong", kind, bad, nestedCmdTrials)
		})
	}
}
