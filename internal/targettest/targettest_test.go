package targettest_test

import (
	"os"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
)

func TestMain(m *testing.M) { os.Exit(testserver.RunMain(m)) }

// TestTargetsAreNewAndSeparate: every kind gives an empty, writable target; two targets of one
// kind do not see each other's objects; Location names the target for the command line.
func TestTargetsAreNewAndSeparate(t *testing.T) {
	targettest.Run(t, targettest.All, targettest.Options{Parallel: true}, func(t *testing.T, a *targettest.Target) {
		ctx := t.Context()
		b := targettest.New(t, a.Kind, targettest.Options{})
		if _, err := store.PutBytes(ctx, a.Store, "x/y", []byte("data"), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if got, err := store.ReadAll(ctx, a.Store, "x/y", 0); err != nil || string(got) != "data" {
			t.Errorf("read back %q, %v", got, err)
		}
		if ok, err := store.Exists(ctx, b.Store, "x/y"); ok || err != nil {
			t.Errorf("a second %s target sees the first's object (%v, %v)", a.Kind, ok, err)
		}
		switch {
		case a.Kind == targettest.Memory:
			if a.Location != "" {
				t.Errorf("memory target has a location %q", a.Location)
			}
		case a.Kind.IsS3():
			if want := "s3://" + a.Bucket + "/mirror"; a.Location != want || a.Bucket == b.Bucket {
				t.Errorf("location %q (want %q), buckets %s and %s", a.Location, want, a.Bucket, b.Bucket)
			}
			if _, err := a.Server.MinioClient(t).StatObject(ctx, a.Bucket, "mirror/x/y", minio.StatObjectOptions{}); err != nil {
				t.Errorf("the object is not at mirror/x/y in the bucket: %v", err)
			}
		default:
			if a.Location != a.Dir || a.Dir == b.Dir {
				t.Errorf("directory target: location %q, dir %q", a.Location, a.Dir)
			}
		}
	})
}
