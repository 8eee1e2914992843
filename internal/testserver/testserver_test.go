package testserver

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { os.Exit(RunMain(m)) }

// TestRoundTrip starts each kind, creates a bucket and writes and reads an object through
// minio-go, and checks that a shared server is reused.
func TestRoundTrip(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := Shared(t, kind)
			if again := Shared(t, kind); again != srv {
				t.Fatalf("Shared started a second %s server", kind)
			}
			ctx := t.Context()
			bucket := srv.NewBucket(t, "Round_Trip")
			mc := srv.MinioClient(t)
			data := []byte("hello, " + string(kind))
			if _, err := mc.PutObject(ctx, bucket, "a/b.txt", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				t.Fatalf("put: %v", err)
			}
			obj, err := mc.GetObject(ctx, bucket, "a/b.txt", minio.GetObjectOptions{})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			defer obj.Close()
			got, err := io.ReadAll(obj)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %q, want %q", got, data)
			}
		})
	}
}

// TestDedicated checks that a per-test server is independent of the shared one and is stopped.
func TestDedicated(t *testing.T) {
	var srv *Server
	t.Run("start", func(t *testing.T) {
		srv = VersityGW(t)
		if srv == Shared(t, KindVersityGW) {
			t.Fatal("dedicated server is the shared one")
		}
		srv.NewBucket(t, "dedicated")
	})
	if srv == nil {
		return
	}
	select {
	case <-srv.done:
	default:
		t.Fatal("dedicated server still running after its test ended")
	}
}
