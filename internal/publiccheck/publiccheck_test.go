package publiccheck_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/mirrortest"
	"github.com/ssmirror/ssmirror/internal/publiccheck"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/sync"
)

// frozen serves a directory like a web server, except for the keys it was told to hold: those
// it answers with the bytes it holds, as a cache that has not expired them would.
type frozen struct {
	dir  string
	mu   gosync.Mutex
	held map[string][]byte
}

func (f *frozen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Path[1:]
	f.mu.Lock()
	data, ok := f.held[key]
	f.mu.Unlock()
	if ok {
		w.Header().Set("Age", "42")
		w.Write(data)
		return
	}
	http.FileServer(http.Dir(f.dir)).ServeHTTP(w, r)
}

func (f *frozen) hold(t *testing.T, key string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.dir, key))
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.held[key] = data
	f.mu.Unlock()
}

// mirror publishes a small stream (versions as given) into a directory and serves it.
func mirror(t *testing.T, versions ...string) (*frozen, *httptest.Server, func(versions ...string) *sync.Report) {
	dir, dst := mirrortest.DirTarget(t)
	f := &frozen{dir: dir, held: map[string][]byte{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	publish := func(versions ...string) *sync.Report {
		cfg := streamtest.SmallConfig()
		cfg.Versions = versions
		up := mirrortest.NewUpstream(t, cfg, nil)
		return mirrortest.Run(t, up.Src, up.Keyring, dst, sync.Options{Selection: sync.Selection{Filters: mirrortest.MustParse(t, "arch=amd64"), Max: 1}})
	}
	publish(versions...)
	return f, srv, publish
}

func expect(t *testing.T, dir string, rep *sync.Report) publiccheck.Expect {
	t.Helper()
	rec, err := os.ReadFile(filepath.Join(dir, sync.FreshnessKey))
	if err != nil {
		t.Fatal(err)
	}
	return publiccheck.Expect{Record: rec, Files: publiccheck.HeldFiles(rep.Plan.Held)}
}

func client(t *testing.T, srv *httptest.Server) *publiccheck.Client {
	c, err := publiccheck.NewClient(srv.Client(), srv.URL+"/", "test")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReadBack: a URL serving what was published is current at once; one whose cache holds the
// previous index is reported stale once the wait is over; a file deleted behind the mirror's
// back is reported missing.
func TestReadBack(t *testing.T) {
	f, srv, publish := mirror(t, "20250701")
	f.hold(t, "streams/v1/index.sjson")
	f.hold(t, "streams/v1/index.json")
	rep := publish("20250701", "20250718")
	c := client(t, srv)
	opts := publiccheck.ReadBackOptions{Wait: 300 * time.Millisecond, Poll: 50 * time.Millisecond, Files: publiccheck.FilesOptions{Sample: 2}}

	res, err := c.ReadBack(t.Context(), expect(t, f.dir, rep), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.IndexSeconds != nil || len(res.Stale) != 2 || res.Stale[0].Path != "streams/v1/index.json" || res.Stale[1].Path != "streams/v1/index.sjson" || res.Stale[0].What != "stale" {
		t.Errorf("a cache holding the old index: %+v", res)
	}
	if res.RecordSeconds == nil || res.WaitedSeconds < 0.3 {
		t.Errorf("record seconds %v, waited %v", res.RecordSeconds, res.WaitedSeconds)
	}
	t.Logf("stale: %v", res.Err())

	// The cache lets go during the wait: current, and how long it took is said.
	f.mu.Lock()
	f.held = map[string][]byte{}
	f.mu.Unlock()
	res, err = c.ReadBack(t.Context(), expect(t, f.dir, rep), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.IndexSeconds == nil || res.CurrentSeconds == nil || res.FilesChecked == 0 || res.FilesHashed != 2 {
		t.Errorf("current: %+v", res)
	}

	// A held file deleted behind the mirror's back.
	gone := publiccheck.HeldFiles(rep.Plan.Held)[0].Path
	if err := os.Remove(filepath.Join(f.dir, gone)); err != nil {
		t.Fatal(err)
	}
	res, err = c.ReadBack(t.Context(), expect(t, f.dir, rep), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Missing) != 1 || res.Missing[0].Path != gone || res.Missing[0].What != "missing" || len(res.Stale) != 0 {
		t.Errorf("a deleted file: %+v", res)
	}
}

// TestCheck: check reads the mirror through its URL: all served; a deleted file is missing; an
// index held by a cache beside a newer freshness record is stale; --max-age fails a mirror
// published longer ago.
func TestCheck(t *testing.T) {
	f, srv, publish := mirror(t, "20250701")
	c := client(t, srv)
	kr := mirrortest.NewUpstream(t, streamtest.SmallConfig(), nil).Keyring
	opts := publiccheck.CheckOptions{Keyring: kr, Filters: mirrortest.MustParse(t, "arch=amd64"), Max: 1}
	rep, err := c.Check(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Freshness == nil || rep.Files == 0 || !rep.Verified || rep.AgeSeconds == nil {
		t.Errorf("a good mirror: %+v", rep)
	}
	// Without the selection, a verbatim mirror lists what it does not hold.
	if all, err := c.Check(t.Context(), publiccheck.CheckOptions{}); err != nil || all.OK || len(all.Missing) == 0 {
		t.Errorf("whole check of a filtered verbatim mirror: %+v, %v", all, err)
	}

	for _, k := range []string{"streams/v1/index.sjson", "streams/v1/index.json", "streams/v1/index.json.gpg"} {
		f.hold(t, k) // a cache holding the previous index, every form of it
	}
	publish("20250701", "20250718")
	rep, err = c.Check(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Stale) == 0 {
		t.Errorf("an index held by a cache: %+v", rep)
	}
	f.mu.Lock()
	f.held = map[string][]byte{}
	f.mu.Unlock()

	files := publiccheck.HeldFiles(mustPlan(t, f.dir).Held)
	gone := files[len(files)-1].Path
	if err := os.Remove(filepath.Join(f.dir, gone)); err != nil {
		t.Fatal(err)
	}
	rep, err = c.Check(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Missing) != 1 || rep.Missing[0].Path != gone || len(rep.Stale) != 0 {
		t.Errorf("a deleted file: %+v", rep)
	}

	opts.MaxAge = time.Hour
	opts.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	rep, err = c.Check(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.TooOld || rep.OK {
		t.Errorf("older than --max-age: %+v", rep)
	}
}

// mustPlan is the mirror's held set, from its state.
func mustPlan(t *testing.T, dir string) *sync.Plan {
	t.Helper()
	_, dst := mirrortest.DirTarget(t)
	_ = dst
	d, err := os.ReadFile(filepath.Join(dir, sync.StateKey))
	if err != nil {
		t.Fatal(err)
	}
	st := sync.NewState()
	if err := st.UnmarshalJSON(d); err != nil {
		t.Fatal(err)
	}
	return &sync.Plan{Held: st.Held}
}
