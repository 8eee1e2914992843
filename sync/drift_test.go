package sync_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/mirrortest"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

// drift is what a test does to a published mirror behind its back: content objects deleted,
// replaced by other bytes of the same size, replaced by bytes of another size; a products file
// deleted and the signed index replaced by other bytes of the same size.
type drift struct {
	deleted, sameSize, otherSize []string
	products, signedIndex        string
}

func (d drift) content() []string {
	return slices.Concat(d.deleted, d.sameSize, d.otherSize)
}

// pickDrift chooses the victims among the published content paths (sorted) and metadata.
func pickDrift(t *testing.T, content []string, metadata map[string]bool) drift {
	t.Helper()
	if len(content) < 5 {
		t.Fatalf("only %d content files published", len(content))
	}
	d := drift{
		deleted:     []string{content[0]},
		sameSize:    []string{content[1], content[2]},
		otherSize:   []string{content[3]},
		products:    streamtest.ProductsPath(streamtest.DownloadID),
		signedIndex: streamtest.SignedIndexPath,
	}
	for _, p := range []string{d.products, d.signedIndex} {
		if !metadata[p] {
			t.Fatalf("%s not published", p)
		}
	}
	return d
}

func sha256Hex(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// TestDriftHealedDirectory: objects deleted and replaced behind the mirror's back (content and
// metadata; a replacement by rename as rsync does, one in place with the file's time set back
// from a "backup", one of another size) are healed by a plain run, which then leaves the mirror
// as it was; the run after that is up to date again.
func TestDriftHealedDirectory(t *testing.T) {
	for _, curated := range []bool{false, true} {
		name := "verbatim"
		if curated {
			name = "curated"
		}
		t.Run(name, func(t *testing.T) {
			up := newUpstream(t, smallConfig(), nil)
			dir, dst := newTarget(t)
			opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}}
			var kr *sign.Keyring
			if curated {
				opts.Signer = loadSigner(t, "other-signing-key.asc")
				kr = publicKeyring(t, opts.Signer)
			}
			run(t, up, dst, opts)
			before := tree(t, dir)
			metadata := map[string]bool{}
			for p := range before {
				metadata[p] = strings.HasPrefix(p, "streams/")
			}
			d := pickDrift(t, contentPaths(before), metadata)
			file := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }

			for _, p := range slices.Concat(d.deleted, []string{d.products}) {
				if err := os.Remove(file(p)); err != nil {
					t.Fatal(err)
				}
			}
			// Same size, by rename (a new file, as rsync and most tools replace one).
			tmp := file(d.sameSize[0]) + ".restored"
			if err := os.WriteFile(tmp, mirrortest.Flipped(before[d.sameSize[0]]), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, file(d.sameSize[0])); err != nil {
				t.Fatal(err)
			}
			// Same size, in place, with the time set from a "backup".
			backupTime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
			for _, p := range []string{d.sameSize[1], d.signedIndex} {
				if err := os.WriteFile(file(p), mirrortest.Flipped(before[p]), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(file(p), backupTime, backupTime); err != nil {
					t.Fatal(err)
				}
			}
			// Another size, in place.
			if err := os.WriteFile(file(d.otherSize[0]), before[d.otherSize[0]][:len(before[d.otherSize[0]])/2], 0o644); err != nil {
				t.Fatal(err)
			}

			up.stream.ResetRequests()
			rep := run(t, up, dst, opts)
			after := tree(t, dir)
			healed := 0
			for _, p := range d.content() {
				if bytes.Equal(after[p], before[p]) {
					healed++
				} else {
					t.Errorf("%s not healed: %d bytes, sha256 %s, want %d bytes %s", p, len(after[p]), sha256Hex(after[p]), len(before[p]), sha256Hex(before[p]))
				}
			}
			if n := rep.Fetched + rep.Copied; n != len(d.content()) {
				t.Errorf("the healing run fetched %d and copied %d, want %d in all", rep.Fetched, rep.Copied, len(d.content()))
			}
			metaHealed := 0
			for _, p := range []string{d.products, d.signedIndex} {
				if !slices.Contains(rep.MetadataWritten, p) {
					t.Errorf("%s not rewritten (wrote %v)", p, rep.MetadataWritten)
				} else {
					metaHealed++
				}
			}
			// Everything is as before: byte for byte, but for the signatures a curated mirror
			// made again (they carry their time), which must verify.
			for p, want := range before {
				got, ok := after[p]
				resigned := curated && (strings.HasSuffix(p, ".sjson") || strings.HasSuffix(p, ".gpg"))
				if !ok || (!resigned && !bytes.Equal(got, want)) {
					t.Errorf("%s differs from the mirror before the drift (present %v)", p, ok)
				}
			}
			if len(after) != len(before) {
				t.Errorf("%d files after healing, %d before", len(after), len(before))
			}
			if curated {
				if _, err := sync.LoadCatalogue(t.Context(), dst, "", sync.Verification{Keyring: kr}, 0, 2); err != nil {
					t.Errorf("the healed curated mirror does not verify: %v", err)
				}
			} else {
				checkVerbatim(t, up, after)
			}
			t.Logf("healed %d content objects (%d fetched, %d copied) and %d metadata objects; metadata written: %v",
				healed, rep.Fetched, rep.Copied, metaHealed, rep.MetadataWritten)

			rep = run(t, up, dst, opts)
			if rep.Fetched+rep.Copied+rep.Adopted != 0 || len(rep.MetadataWritten) != 0 {
				t.Errorf("run after healing: fetched %d, copied %d, adopted %d, metadata %v", rep.Fetched, rep.Copied, rep.Adopted, rep.MetadataWritten)
			}
		})
	}
}

// TestDriftHealedS3: the same on MinIO (and verbatim on versitygw and SeaweedFS), the drift made with an
// independent client (minio-go): objects removed, and replaced with PutObject by other bytes of
// the same and of another size.
func TestDriftHealedS3(t *testing.T) {
	for _, tc := range []struct {
		kind    testserver.Kind
		curated bool
	}{{testserver.KindMinIO, false}, {testserver.KindMinIO, true}, {testserver.KindVersityGW, false}, {testserver.KindSeaweedFS, false}} {
		curated := tc.curated
		name := string(tc.kind) + "/verbatim"
		if curated {
			name = string(tc.kind) + "/curated"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel() // its own upstream and bucket
			ctx := t.Context()
			up := newUpstream(t, largeConfig(), nil)
			e := newS3Target(t, tc.kind)
			filters := []string{"arch=amd64", "release~(jammy|noble)"}
			opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}}
			var kr *sign.Keyring
			if curated {
				opts.Signer = loadSigner(t, "other-signing-key.asc")
				kr = publicKeyring(t, opts.Signer)
			}
			run(t, up, e.dst, opts)
			want := selected(t, up.stream, filters...)
			metadata := map[string]bool{}
			for obj := range e.mc.ListObjects(ctx, e.bucket, minio.ListObjectsOptions{Prefix: "maas/stable/streams/", Recursive: true}) {
				if obj.Err != nil {
					t.Fatal(obj.Err)
				}
				metadata[strings.TrimPrefix(obj.Key, "maas/stable/")] = true
			}
			// A multipart squashfs among the victims: its ETag is not an MD5.
			content := slices.Clone(want)
			slices.SortStableFunc(content, func(a, b string) int {
				return boolInt(!strings.HasSuffix(a, "/squashfs")) - boolInt(!strings.HasSuffix(b, "/squashfs"))
			})
			d := pickDrift(t, content, metadata)
			get := func(p string) []byte {
				t.Helper()
				obj, err := e.mc.GetObject(ctx, e.bucket, "maas/stable/"+p, minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer obj.Close()
				data, err := io.ReadAll(obj)
				if err != nil {
					t.Fatalf("reading %s: %v", p, err)
				}
				return data
			}
			put := func(p string, data []byte) {
				t.Helper()
				if _, err := e.mc.PutObject(ctx, e.bucket, "maas/stable/"+p, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			metaBefore := get(d.products)
			for _, p := range slices.Concat(d.deleted, []string{d.products}) {
				if err := e.mc.RemoveObject(ctx, e.bucket, "maas/stable/"+p, minio.RemoveObjectOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range append(slices.Clone(d.sameSize), d.signedIndex) {
				put(p, mirrortest.Flipped(get(p)))
			}
			for _, p := range d.otherSize {
				put(p, get(p)[:100])
			}

			rep := run(t, up, e.dst, opts)
			healed := 0
			for _, p := range d.content() {
				obj, err := e.mc.GetObject(ctx, e.bucket, "maas/stable/"+p, minio.GetObjectOptions{})
				var data []byte
				if err == nil {
					data, err = io.ReadAll(obj)
					obj.Close()
				}
				switch got := sha256Hex(data); {
				case err != nil:
					t.Errorf("%s not healed: %v", p, err)
				case got != up.stream.SHA256(p):
					t.Errorf("%s not healed: sha256 %s, catalogue says %s", p, got, up.stream.SHA256(p))
				default:
					healed++
				}
			}
			if n := rep.Fetched + rep.Copied; n != len(d.content()) {
				t.Errorf("the healing run fetched %d and copied %d, want %d in all", rep.Fetched, rep.Copied, len(d.content()))
			}
			metaHealed := 0
			for _, p := range []string{d.products, d.signedIndex} {
				if slices.Contains(rep.MetadataWritten, p) {
					metaHealed++
				} else {
					t.Errorf("%s not rewritten (wrote %v)", p, rep.MetadataWritten)
				}
			}
			if !bytes.Equal(get(d.products), metaBefore) {
				t.Errorf("%s is not what was published before", d.products)
			}
			checkBucket(t, e, up, want, kr)
			t.Logf("healed %d content objects (%d fetched, %d copied) and %d metadata objects; metadata written: %v",
				healed, rep.Fetched, rep.Copied, metaHealed, rep.MetadataWritten)

			rep = run(t, up, e.dst, opts)
			if rep.Fetched+rep.Copied+rep.Adopted != 0 || len(rep.MetadataWritten) != 0 {
				t.Errorf("run after healing: fetched %d, copied %d, adopted %d, metadata %v", rep.Fetched, rep.Copied, rep.Adopted, rep.MetadataWritten)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestUpToDate10000ItemsS3: an up-to-date run of a 10,000-item mirror in MinIO makes at most 20
// bucket requests: take the lock, read the state, list the target (10,000 objects and the
// metadata: 11 pages of 1,000), release the lock. The requests are counted by the S3 client's HTTP client, so retries count too. The
// run's wall time is logged, not asserted.
func TestUpToDate10000ItemsS3(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the first run uploads 10,000 objects")
	}
	cfg := streamtest.Config{
		Releases: []string{"bionic", "focal", "jammy", "noble", "plucky"},
		Arches:   []string{"amd64", "arm64"},
		Kernels:  []string{"ga"},
		Seed:     1,
		// Tiny content: the test is about requests per object, not bytes.
		SquashfsSize: 64, KernelSize: 64, InitrdSize: 64,
	}
	day := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 250 { // 5 releases × 2 arches × 4 items × 250 versions
		cfg.Versions = append(cfg.Versions, day.AddDate(0, 0, i).Format("20060102"))
	}
	up := newUpstream(t, cfg, nil)
	if n := len(up.stream.Items); n < 10000 {
		t.Fatalf("the stream has %d items, want 10,000", n)
	}
	e := newS3Target(t, testserver.KindMinIO)
	opts := sync.Options{Publishing: sync.Publishing{GCGrace: -1}, Tuning: sync.Tuning{Concurrency: 16}}
	start := time.Now()
	rep := run(t, up, e.dst, opts)
	t.Logf("first run: %d items, %d objects fetched in %v", rep.Plan.Kept+len(rep.Plan.Added), rep.Fetched, time.Since(start).Round(time.Millisecond))

	e.counter.n.Store(0)
	e.counter.mu.Lock()
	clear(e.counter.byOp)
	e.counter.mu.Unlock()
	up.stream.ResetRequests()
	start = time.Now()
	rep = run(t, up, e.dst, opts)
	elapsed := time.Since(start)
	if rep.Fetched+rep.Copied+rep.Adopted != 0 || len(rep.MetadataWritten) != 0 || len(rep.Drifted) != 0 {
		t.Errorf("up-to-date run: fetched %d, copied %d, adopted %d, metadata %v, drifted %d",
			rep.Fetched, rep.Copied, rep.Adopted, rep.MetadataWritten, len(rep.Drifted))
	}
	e.counter.mu.Lock()
	n, byOp := e.counter.n.Load(), maps.Clone(e.counter.byOp)
	e.counter.mu.Unlock()
	pages := byOp["GET list"]
	objects := 0 // counted with the independent client, not through the counted one
	for obj := range e.mc.ListObjects(t.Context(), e.bucket, minio.ListObjectsOptions{Prefix: "maas/stable/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		objects++
	}
	if n > 20 {
		t.Errorf("up-to-date run sent %d S3 requests (%v), want at most 20", n, byOp)
	}
	// The whole target is listed (the lock, present while the run lists, may add a key).
	if min := (objects + 999) / 1000; pages < min || pages > min+1 {
		t.Errorf("the target (%d objects) was listed in %d pages, want %d", objects, pages, min)
	}
	// For the report: what one listing of the target costs on its own.
	listStart := time.Now()
	if err := e.dst.List(t.Context(), "", func(store.Info) error { return nil }); err != nil {
		t.Fatal(err)
	}
	t.Logf("one listing of the target alone: %v", time.Since(listStart).Round(time.Millisecond))
	t.Logf("up-to-date run of %d items (%d objects in the bucket): %d S3 requests %v, %v wall time; stages %v",
		rep.Plan.Kept, objects, n, byOp, elapsed.Round(time.Millisecond), rep.Stages)
}

// TestStateWithoutETags: a state.json written before ETags were recorded is read; its content
// objects and metadata are trusted on their size, as that version did, and take the listed
// ETags: nothing is read, fetched or rewritten, and drift from then on is seen.
func TestStateWithoutETags(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1}}
	run(t, up, dst, opts)

	name := filepath.Join(dir, ".ssmirror", "state.json")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	stripped := 0
	for _, field := range []string{"objects", "published"} {
		for _, rec := range doc[field].(map[string]any) {
			if _, ok := rec.(map[string]any)["etag"]; ok {
				delete(rec.(map[string]any), "etag")
				stripped++
			}
		}
	}
	if stripped == 0 {
		t.Fatal("the state records no ETags")
	}
	old, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, old, 0o644); err != nil {
		t.Fatal(err)
	}

	rep := run(t, up, dst, opts)
	if rep.Fetched+rep.Copied+rep.Adopted != 0 || len(rep.Drifted) != 0 {
		t.Errorf("run on a state without ETags: fetched %d, copied %d, adopted %d, drifted %v", rep.Fetched, rep.Copied, rep.Adopted, rep.Drifted)
	}
	if len(rep.MetadataWritten) != 0 {
		t.Errorf("metadata rewritten: %v", rep.MetadataWritten)
	}
	if data, err := os.ReadFile(name); err != nil || bytes.Count(data, []byte(`"etag"`)) != stripped {
		t.Errorf("the state records %d ETags after the run, want %d again (err %v)", bytes.Count(data, []byte(`"etag"`)), stripped, err)
	}
	// Drift is seen again: a products file replaced in place by other bytes of its size.
	products := filepath.Join(dir, filepath.FromSlash(streamtest.ProductsPath(streamtest.DownloadID)))
	if err := os.WriteFile(products, mirrortest.Flipped(up.stream.Files[streamtest.ProductsPath(streamtest.DownloadID)]), 0o644); err != nil {
		t.Fatal(err)
	}
	rep = run(t, up, dst, opts)
	if rep.Fetched+rep.Copied+rep.Adopted != 0 || !slices.Equal(rep.MetadataWritten, []string{streamtest.ProductsPath(streamtest.DownloadID)}) {
		t.Errorf("the run after: fetched %d, copied %d, adopted %d, metadata %v", rep.Fetched, rep.Copied, rep.Adopted, rep.MetadataWritten)
	}
	checkVerbatim(t, up, tree(t, dir))
}
