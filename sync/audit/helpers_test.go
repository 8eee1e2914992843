package audit_test

import (
	"os"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/mirrortest"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// The audit's tests build real mirrors with sync.Run from a generated signed stream served over
// loopback HTTP, then damage them; these helpers are the few of sync's test helpers they need.

func TestMain(m *testing.M) { os.Exit(testserver.RunMain(m)) }

// upstream is a generated signed stream served over real HTTP on loopback.
type upstream struct {
	stream  *streamtest.Stream
	src     store.Source
	keyring *sign.Keyring
}

func loadSigner(t testing.TB, name string) *sign.Signer { return testkeys.Signer(t, name) }

func newUpstream(t *testing.T, cfg streamtest.Config, signer *sign.Signer) *upstream {
	t.Helper()
	u := mirrortest.NewUpstream(t, cfg, signer)
	return &upstream{stream: u.Stream, src: u.Src, keyring: u.Keyring}
}

func smallConfig() streamtest.Config { return streamtest.SmallConfig() }

func newTarget(t *testing.T) (string, *dirstore.Store) { t.Helper(); return mirrortest.DirTarget(t) }

func mustParse(t *testing.T, args ...string) streams.Filters {
	t.Helper()
	return mirrortest.MustParse(t, args...)
}

// run mirrors up into dst, checking upstream's signatures unless opts says otherwise.
func run(t *testing.T, up *upstream, dst store.Target, opts sync.Options) *sync.Report {
	t.Helper()
	return mirrortest.Run(t, up.src, up.keyring, dst, opts)
}

func selected(t *testing.T, s *streamtest.Stream, args ...string) []string {
	t.Helper()
	return mirrortest.Selected(t, s, args...)
}

func hostileUpstream(t *testing.T, items map[string]string, hashes ...string) store.Source {
	t.Helper()
	return mirrortest.HostileUpstream(t, items, hashes...)
}

type s3env struct {
	mc     *minio.Client
	bucket string
	dst    *s3store.Store
}

// newS3Target is a mirror target in a fresh bucket of a shared test server, under the prefix
// "maas/stable/".
func newS3Target(t *testing.T, kind testserver.Kind) *s3env {
	t.Helper()
	srv := testserver.Shared(t, kind)
	srv.IsolateAWSEnv(t)
	opts := s3store.Options{Endpoint: srv.Endpoint, Region: srv.Region, PartSize: s3store.MinPartSize, PartConcurrency: 2}
	client, err := s3store.NewClient(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t, t.Name())
	return &s3env{mc: srv.MinioClient(t), bucket: bucket, dst: s3store.New(client, bucket, "maas/stable/", opts)}
}
