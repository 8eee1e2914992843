package sync_test

import (
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// TestGCOnVersionedBuckets: on a bucket with versioning (or object lock) a delete only adds a
// delete marker: the run reports the objects deleted, no byte freed and every one kept, and
// their versions are still in the bucket; with PurgeVersions the noncurrent versions ssmirror
// wrote are deleted, then the delete markers, and their sizes are reported freed; under an
// object-lock retention they cannot be deleted, and nothing is reported freed. On a bucket
// without versioning the sizes deleted are freed. Before, every case reported the objects
// "deleted" alike, whatever stayed in the bucket.
func TestGCOnVersionedBuckets(t *testing.T) {
	filters := []string{"release=jammy", "arch=amd64"}
	old := newUpstream(t, smallConfig("20250701"), nil)
	up := newUpstream(t, smallConfig("20250701", "20250718"), nil)
	for _, kind := range []testserver.Kind{testserver.KindMinIO, testserver.KindSeaweedFS} {
		for _, tc := range []struct {
			name                    string
			versioning, lock, purge bool
			retain                  bool
			wantFreed, wantGone     bool
		}{
			{name: "unversioned", wantFreed: true, wantGone: true},
			{name: "versioned", versioning: true},
			{name: "versioned purged", versioning: true, purge: true, wantFreed: true, wantGone: true},
			{name: "object lock purged", lock: true, purge: true, wantFreed: true, wantGone: true},
			{name: "object lock retained", lock: true, retain: true, purge: true},
		} {
			t.Run(string(kind)+"/"+tc.name, func(t *testing.T) {
				srv := testserver.Shared(t, kind)
				mc := srv.MinioClient(t)
				opts := s3store.Options{}
				client := targettest.Client(t, srv, &opts)
				bucket := srv.NewBucket(t, t.Name()) + "-v"
				if err := mc.MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{Region: srv.Region, ObjectLocking: tc.lock}); err != nil {
					t.Fatalf("making a bucket (object lock %v): %v", tc.lock, err)
				}
				if tc.versioning {
					if err := mc.EnableVersioning(t.Context(), bucket); err != nil {
						t.Fatal(err)
					}
				}
				if tc.retain {
					mode, days, unit := minio.Governance, uint(1), minio.Days
					if err := mc.SetObjectLockConfig(t.Context(), bucket, &mode, &days, &unit); err != nil {
						t.Fatal(err)
					}
				}
				dst := s3store.New(client, bucket, "m/", opts)
				run(t, old, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}})
				oldPaths := selected(t, old.stream, filters...)
				sizes := map[string]int64{}
				for _, it := range old.stream.Items {
					sizes[it.Path] = it.Size
				}
				var size int64
				for _, p := range oldPaths {
					size += sizes[p]
				}
				// The new version replaces the old one, deleted at once (no grace).
				rep := run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}, Publishing: sync.Publishing{PurgeVersions: tc.purge}})
				if len(rep.Deleted) != len(oldPaths) {
					t.Fatalf("deleted %d objects, want the old version's %d", len(rep.Deleted), len(oldPaths))
				}
				if rep.Versioning == nil || rep.Versioning.KeepsDeleted() != (tc.versioning || tc.lock) || rep.Versioning.ObjectLock != tc.lock {
					t.Errorf("versioning reported %+v, want versioning %v, object lock %v", rep.Versioning, tc.versioning, tc.lock)
				}
				wantFreed, wantKept := int64(0), len(oldPaths)
				if tc.wantFreed {
					wantFreed, wantKept = size, 0
				}
				if rep.FreedBytes != wantFreed || rep.VersionsKept != wantKept {
					t.Errorf("freed %d bytes, %d kept; want %d, %d", rep.FreedBytes, rep.VersionsKept, wantFreed, wantKept)
				}
				vd := store.Target(dst).(store.VersionDeleter)
				for _, p := range oldPaths {
					vs, err := vd.Versions(t.Context(), p)
					if err != nil {
						t.Fatal(err)
					}
					if gone := len(vs) == 0; gone != tc.wantGone {
						t.Errorf("%s: versions left %+v, want gone %v", p, vs, tc.wantGone)
					}
					if _, err := dst.Stat(t.Context(), p); err == nil {
						t.Errorf("%s still readable after its deletion", p)
					}
				}
			})
		}
	}
}
