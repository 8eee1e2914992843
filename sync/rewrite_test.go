package sync_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/sync"
)

// publishedItem is what published metadata promises at one path.
type publishedItem struct {
	Size   int64
	SHA256 string
}

// readPublished reads, as a reader of the mirror does, every products file the target's
// published index names, and returns what they promise by path (nil when there is no index
// yet).
func readPublished(ctx context.Context, dst store.Source) (map[string]publishedItem, error) {
	raw, err := store.ReadAll(ctx, dst, "streams/v1/index.json", 16<<20)
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var index struct {
		Index map[string]struct {
			Path string `json:"path"`
		} `json:"index"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, err
	}
	out := map[string]publishedItem{}
	for _, e := range index.Index {
		raw, err := store.ReadAll(ctx, dst, e.Path, 64<<20)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Products map[string]struct {
				Versions map[string]struct {
					Items map[string]struct {
						Path   string `json:"path"`
						Size   int64  `json:"size"`
						SHA256 string `json:"sha256"`
					} `json:"items"`
				} `json:"versions"`
			} `json:"products"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, err
		}
		for _, p := range doc.Products {
			for _, v := range p.Versions {
				for _, it := range v.Items {
					out[it.Path] = publishedItem{it.Size, it.SHA256}
				}
			}
		}
	}
	return out, nil
}

// wrongReads reads the published metadata and then every file it names, and returns the paths
// whose bytes are not what it promises (size or sha256; a missing file is not counted: it is
// not wrong bytes).
func wrongReads(ctx context.Context, dst store.Source) ([]string, error) {
	pub, err := readPublished(ctx, dst)
	if err != nil {
		return nil, err
	}
	var wrong []string
	for path, want := range pub {
		rc, err := dst.Open(ctx, path, 0)
		if errors.Is(err, store.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		if n != want.Size || hex.EncodeToString(h.Sum(nil)) != want.SHA256 {
			wrong = append(wrong, path)
		}
	}
	return wrong, nil
}

// swappable serves whichever stream it holds now.
type swappable struct {
	cur atomic.Pointer[streamtest.Stream]
}

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.cur.Load().Handler().ServeHTTP(w, r)
}

// TestUpstreamRewriteInPlace (issue 24, fault 2): upstream rewrites every file of a version at
// the same paths (new bytes, new sha256, re-signed products) and adds a version. A reader polls
// the target all through the next run (the published metadata, then every file it names,
// checked against it), and once more after it; that run fails late (one new file is missing
// upstream, another is slow). The run is refused before it writes anything (ErrRewritten), so
// no read is ever wrong: on the old code the run overwrote the published files first, and
// every reader after the failed run got bytes the published metadata does not name.
func TestUpstreamRewriteInPlace(t *testing.T) {
	for _, kind := range []string{"directory", "minio"} {
		t.Run(kind, func(t *testing.T) {
			var dst store.Target
			if kind == "directory" {
				_, dst = newTarget(t)
			} else {
				dst = newS3Target(t, testserver.KindMinIO).dst
			}
			signer := testkeys.Signer(t, "test-signing-key.asc")
			keyring := testkeys.LoadKeyring(t, testkeys.Keyring)
			cfg1 := smallConfig("20250701")
			s1, err := streamtest.Generate(cfg1, signer)
			if err != nil {
				t.Fatal(err)
			}
			cfg2 := smallConfig("20250701", "20250718")
			cfg2.Seed = 2 // every path's bytes differ
			s2, err := streamtest.Generate(cfg2, signer)
			if err != nil {
				t.Fatal(err)
			}
			var newPaths []string
			for _, it := range s2.Items {
				if it.Version == "20250718" && !strings.Contains(it.Path, "manifest") {
					newPaths = append(newPaths, it.Path)
				}
			}
			s2.SetOverride(newPaths[0], func(r io.Reader) io.Reader { time.Sleep(1500 * time.Millisecond); return r })
			s2.SetHidden(newPaths[len(newPaths)-1], true) // the run fails late
			var up swappable
			up.cur.Store(s1)
			srv := httptest.NewServer(&up)
			defer srv.Close()
			src, err := httpstore.New(srv.Client(), srv.URL+"/", httpstore.Options{Retries: 1})
			if err != nil {
				t.Fatal(err)
			}
			opts := sync.Options{Selection: sync.Selection{Verification: sync.Verification{Keyring: keyring}}}
			if _, err := sync.Run(t.Context(), src, dst, opts); err != nil {
				t.Fatal(err)
			}

			up.cur.Store(s2)
			var (
				reads, wrong atomic.Int64
				stop         = make(chan struct{})
				poll         gosync.WaitGroup
				mu           gosync.Mutex
				examples     []string
			)
			poll.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					bad, err := wrongReads(context.Background(), dst)
					if err != nil {
						continue // a file replaced while read: read again
					}
					reads.Add(1)
					if len(bad) > 0 {
						wrong.Add(1)
						mu.Lock()
						examples = append(examples, bad[0])
						mu.Unlock()
					}
				}
			})
			_, runErr := sync.Run(t.Context(), src, dst, opts)
			time.Sleep(100 * time.Millisecond)
			close(stop)
			poll.Wait()
			after, err := wrongReads(t.Context(), dst)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("run: %v; %d reads during the run, %d wrong; after it: %d wrong", runErr, reads.Load(), wrong.Load(), len(after))
			if !errors.Is(runErr, sync.ErrRewritten) {
				t.Errorf("the run's error %v, want ErrRewritten", runErr)
			}
			if wrong.Load() > 0 || len(after) > 0 {
				t.Errorf("%d of %d reads during the run and %d files after it got bytes the published metadata does not name (e.g. %v %v)",
					wrong.Load(), reads.Load(), len(after), examples, after)
			}
		})
	}
}
