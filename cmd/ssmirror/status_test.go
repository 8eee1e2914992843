package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// TestStatusMinIO: status on a bucket target reports what the sync wrote, shows a run holding
// the lock, and writes nothing; the metrics of the run carry the same totals.
func TestStatusMinIO(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.NewBucket(t, "status")
	srv.IsolateAWSEnv(t)
	fx := fixtureDir(t)
	keyring := "--keyring=" + filepath.Join(fx, "keys", "test-keyring.gpg")
	target := "s3://" + bucket + "/mirror"
	prom := filepath.Join(t.TempDir(), "ssmirror.prom")
	_, stderr, code := runMain(t, keyring, "--s3-endpoint", srv.Endpoint, "--region", srv.Region, "--metrics-textfile", prom,
		filepath.Join(fx, "stream"), target, "arch=amd64", "--max=1")
	if code != 0 {
		t.Fatalf("sync: exit %d: %s", code, stderr)
	}

	mc := srv.MinioClient(t)
	ctx := t.Context()
	listing := func() map[string]string {
		out := map[string]string{}
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			out[o.Key] = o.ETag + " " + o.LastModified.String()
		}
		return out
	}
	before := listing()

	status := func() statusReport {
		t.Helper()
		stdout, stderr, code := runMain(t, "status", "--json", "--s3-endpoint", srv.Endpoint, "--region", srv.Region, target)
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, stderr)
		}
		var r statusReport
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("status --json: %v\n%s", err, stdout)
		}
		return r
	}
	r := status()
	want := heldTotals{Products: 5, Versions: 5, Items: 18, Files: 14}
	got := r.Totals
	got.Bytes = 0
	if got != want || r.Totals.Bytes <= 0 {
		t.Errorf("totals %+v, want %+v and some bytes", r.Totals, want)
	}
	if r.Lock != nil || r.MetadataFiles != 9 || r.LastPublished == nil || r.StateWritten == nil || len(r.Products) != 5 || r.Pending == nil {
		t.Errorf("status: %+v", r)
	}
	if !strings.HasPrefix(r.Target, "s3://"+bucket+"/mirror") {
		t.Errorf("target %q", r.Target)
	}

	// The run's metrics say the same.
	data, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`ssmirror_mirror_items{target="` + target + `"} 18`, `ssmirror_mirror_files{target="` + target + `"} 14`, `ssmirror_mirror_products{target="` + target + `"} 5`} {
		if !strings.Contains(string(data), line+"\n") {
			t.Errorf("metrics lack %s:\n%s", line, data)
		}
	}
	if !strings.Contains(string(data), "ssmirror_mirror_bytes{") {
		t.Errorf("metrics lack the mirror's size")
	}

	// A run holding the lock is shown; status neither waits for it nor touches it.
	client, err := s3store.NewClient(ctx, s3store.Options{Endpoint: srv.Endpoint, Region: srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	dst := s3store.New(client, bucket, "mirror/", s3store.Options{})
	lock, _, err := sync.AcquireLock(ctx, dst, sync.LockOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r = status()
	lease := lock.Lease()
	if r.Lock == nil || r.Lock.PID != lease.PID || r.Lock.Host != lease.Host || !r.Lock.Expires.Equal(lease.Expires) {
		t.Errorf("lock shown as %+v, held as %+v", r.Lock, lease)
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	if r := status(); r.Lock != nil {
		t.Errorf("a released lock is shown as held: %+v", r.Lock)
	}
	// The test itself took and released the lock: the lease object changed, not by status.
	delete(before, "mirror/"+sync.LockKey)
	after := listing()
	delete(after, "mirror/"+sync.LockKey)
	if len(after) != len(before) {
		t.Errorf("objects changed: %d before, %d after", len(before), len(after))
	} else {
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s changed by status: %s -> %s", k, v, after[k])
			}
		}
	}
}
