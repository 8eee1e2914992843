package sync_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/faultproxy"
	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// TestCorruptingMiddleboxNeverPublishes: a proxy between ssmirror and the S3 server inverts one
// byte in a share of the PUT bodies (content, metadata, lock and state objects alike). Over
// several trials per server, each run either succeeds (the server refused the corrupted
// requests and they were sent again) or fails naming the key, and every object in the bucket,
// read back with minio-go straight from the server, is intact: content has the catalogue's
// sha256, metadata is upstream's byte for byte, and every object's bytes have the sha256
// recorded with it. Corrupt objects published: must be 0.
func TestCorruptingMiddleboxNeverPublishes(t *testing.T) {
	up := newUpstream(t, faultConfig(), nil)
	filters := []string{"release~(jammy|noble)"}
	catalogue := map[string]string{}
	for _, it := range up.stream.Items {
		catalogue[it.Path] = it.SHA256
	}
	trials := map[testserver.Kind][]float64{ // the share of PUT bodies corrupted, per trial
		testserver.KindMinIO:     {0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.6, 1},
		testserver.KindVersityGW: {0.2, 0.6},
	}
	var total, succeeded, failed, corrupt, flips int
	targettest.Each(t, targettest.S3, targettest.Options{}, func(t *testing.T, kind targettest.Kind) { // serially: the totals are shared
		for i, rate := range trials[testserver.Kind(kind)] {
			e := newS3Target(t, testserver.Kind(kind))
			uploadID := regexp.MustCompile(`uploadId=[^&]*`)
			p, proxyURL := startProxy(t, e.srv.Endpoint, faultproxy.Options{
				Seed:   uint64(100 + i),
				Faults: []faultproxy.Fault{{Kind: faultproxy.FlipRequest, Rate: rate, Methods: []string{http.MethodPut}}},
				Key: func(r *http.Request) string {
					_, path, _ := strings.Cut(strings.TrimPrefix(r.URL.RequestURI(), "/"), "/")
					return r.Method + " " + uploadID.ReplaceAllString(path, "")
				},
			})
			opts := s3store.Options{Endpoint: proxyURL, PartSize: s3store.MinPartSize, PartConcurrency: 2}
			client := targettest.Client(t, e.srv, &opts)
			dst := s3store.New(client, e.bucket, "maas/stable/", opts)
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			_, runErr := sync.Run(ctx, up.src, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}})
			cancel()
			total++
			if runErr == nil {
				succeeded++
			} else {
				failed++
				if !errors.Is(runErr, s3store.ErrTransit) || !strings.Contains(runErr.Error(), "s3://"+e.bucket+"/maas/stable/") {
					t.Errorf("trial %d: the run failed without naming a key changed in transit: %v", i, runErr)
				}
			}
			bad := checkEveryObject(t, e, up.stream.Files, catalogue)
			corrupt += bad
			st := p.Stats()
			flips += int(st.RequestFlips)
			t.Logf("trial %d (%.0f%% of PUT bodies corrupted): %d bodies corrupted, %d requests sent again, %d corrupt objects; run error: %v",
				i, rate*100, st.RequestFlips, dst.TransitRetries(), bad, runErr)
			if st.RequestFlips == 0 {
				t.Errorf("trial %d: nothing was corrupted", i)
			}
		}
	})
	t.Logf("%d trials (%d succeeded, %d failed naming the key), %d PUT bodies corrupted in transit, %d corrupt objects published", total, succeeded, failed, flips, corrupt)
	if corrupt != 0 {
		t.Errorf("%d corrupt objects published", corrupt)
	}
}

// checkEveryObject reads every object under the mirror's prefix with minio-go and returns how
// many are corrupt (reporting each).
func checkEveryObject(t *testing.T, e *s3env, metadata map[string][]byte, catalogue map[string]string) int {
	t.Helper()
	ctx := t.Context()
	bad := 0
	for obj := range e.mc.ListObjects(ctx, e.bucket, minio.ListObjectsOptions{Prefix: "maas/stable/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		p := strings.TrimPrefix(obj.Key, "maas/stable/")
		o, err := e.mc.GetObject(ctx, e.bucket, obj.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, o)
		o.Close()
		if err != nil {
			t.Fatalf("reading %s: %v", p, err)
		}
		got := hex.EncodeToString(h.Sum(nil))
		info, err := e.mc.StatObject(ctx, e.bucket, obj.Key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var problems []string
		if want, ok := catalogue[p]; ok && got != want {
			problems = append(problems, "the catalogue lists sha256 "+want)
		}
		if data, ok := metadata[p]; ok {
			if sum := sha256.Sum256(data); got != hex.EncodeToString(sum[:]) {
				problems = append(problems, "it is not upstream's metadata file")
			}
		}
		if rec := info.UserMetadata["Sha256"]; rec != "" && rec != got {
			problems = append(problems, "its recorded sha256 is "+rec)
		}
		if len(problems) > 0 {
			bad++
			t.Errorf("corrupt object published: %s has sha256 %s, but %s", p, got, strings.Join(problems, "; "))
		}
	}
	checkNoIncomplete(t, e)
	return bad
}

func checkNoIncomplete(t *testing.T, e *s3env) {
	t.Helper()
	for u := range e.mc.ListIncompleteUploads(t.Context(), e.bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		t.Errorf("incomplete upload left behind: %s", u.Key)
	}
}
