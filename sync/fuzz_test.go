package sync

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/memstore"
	"github.com/ssmirror/ssmirror/streams"
)

// fuzzItems builds a random catalogue from seed: few content ids, products, versions, item
// names and paths, so that paths are shared, versions collide and filters match some.
func fuzzItems(r *rand.Rand, n int) []streams.Item {
	var items []streams.Item
	seen := map[streams.ItemKey]bool{}
	for range n {
		it := streams.Item{
			ContentID: fmt.Sprintf("c%d", r.IntN(2)),
			Product:   fmt.Sprintf("p%d", r.IntN(4)),
			Version:   fmt.Sprintf("v%d", r.IntN(5)),
			Name:      fmt.Sprintf("i%d", r.IntN(4)),
		}
		if seen[it.Key()] {
			continue
		}
		seen[it.Key()] = true
		if r.IntN(8) > 0 { // some items have no content
			it.Path = fmt.Sprintf("f/%d", r.IntN(12))
			it.Size, it.SHA256 = pathSize(it.Path), pathSum(it.Path)
		}
		it.Attrs = streams.NewAttrs(map[string]string{
			"arch": []string{"amd64", "arm64"}[r.IntN(2)], "ftype": it.Name,
			"content_id": it.ContentID, "product_name": it.Product, "version_name": it.Version, "item_name": it.Name,
		})
		items = append(items, it)
	}
	return items
}

// Upstream agrees with itself: a path has one size and hash (the catalogue refuses otherwise).
func pathSize(p string) int64 { return int64(len(p)) * 1000 }
func pathSum(p string) string { s := sha256.Sum256([]byte(p)); return hex.EncodeToString(s[:]) }

// FuzzMakePlan: random catalogues, holdings, presence, filters and options never panic the
// planner, and its invariants hold: every fetch is held with the held size, nothing is fetched
// twice, everything held is either present and verified or fetched, and everything held comes
// from upstream or from what was held.
func FuzzMakePlan(f *testing.F) {
	f.Add(uint64(1), uint8(20), int8(1), uint8(0))
	f.Add(uint64(2), uint8(60), int8(0), uint8(0xff))
	f.Add(uint64(3), uint8(5), int8(-1), uint8(0x5a))
	f.Fuzz(func(t *testing.T, seed uint64, n uint8, max int8, flags uint8) {
		r := rand.New(rand.NewPCG(seed, uint64(n)))
		up := fuzzItems(r, int(n))
		// What was held: some upstream items, some that vanished upstream.
		upPaths := map[string]bool{}
		for _, it := range up {
			upPaths[it.Path] = it.Path != ""
		}
		held := Held{}
		for _, it := range fuzzItems(r, int(n)/2) {
			if r.IntN(3) == 0 {
				it.Version += "-gone"
				if it.Path != "" {
					if !upPaths[it.Path] || r.IntN(2) == 0 {
						it.Path = "gone/" + it.Path
						it.Size, it.SHA256 = pathSize(it.Path), pathSum(it.Path)
					} else {
						// Upstream now lists this path with other content. (Only then: the
						// old holdings agreed with themselves.)
						it.SHA256 = pathSum("old " + it.Path)
					}
				}
			}
			vk := VersionKey{it.ContentID, it.Product, it.Version}
			if held[vk] == nil {
				held[vk] = HeldVersion{}
			}
			held[vk][it.Name] = heldItem(&it)
		}
		present := map[string]Presence{}
		for i := range 14 {
			p := fmt.Sprintf("f/%d", i)
			switch r.IntN(4) {
			case 0:
			case 1:
				present[p] = Presence{Size: pathSize(p), SHA256: pathSum(p), Owned: true}
			case 2:
				present[p] = Presence{Size: pathSize(p) + 1, Owned: r.IntN(2) == 0}
			case 3:
				present[p] = Presence{Size: pathSize(p)}
			}
		}
		var filters streams.Filters
		if flags&1 != 0 {
			filters, _ = streams.ParseFilters([]string{"arch=amd64"})
		}
		if flags&2 != 0 {
			filters, _ = streams.ParseFilters([]string{"ftype~i[01]"})
		}
		in := PlanInput{
			Upstream: up, Filters: filters, Max: int(max), Keep: flags&4 != 0, Prune: flags&8 != 0,
			Held: held, Present: present, VerifyExisting: flags&16 != 0,
		}
		p := MakePlan(in)

		heldSize := map[string]int64{}
		heldSum := map[string]string{}
		for vk, hv := range p.Held {
			for name, hi := range hv {
				if hi.Path != "" {
					if s, ok := heldSum[hi.Path]; ok && s != hi.SHA256 {
						t.Fatalf("%s is held with two sha256s, %s and %s", hi.Path, s, hi.SHA256)
					}
					heldSize[hi.Path], heldSum[hi.Path] = hi.Size, hi.SHA256
				}
				// Held items come from upstream or from what was held.
				fromUp := false
				for i := range up {
					it := &up[i]
					if it.ContentID == vk.ContentID && it.Product == vk.Product && it.Version == vk.Version && it.Name == name && heldItem(it) == hi {
						fromUp = true
						break
					}
				}
				if !fromUp && held[vk][name] != hi {
					t.Fatalf("%v %s is held as %+v, from neither upstream nor the old holdings", vk, name, hi)
				}
			}
		}
		fetched := map[string]bool{}
		for i, fe := range p.Fetch {
			if fetched[fe.Path] {
				t.Fatalf("%s is fetched twice", fe.Path)
			}
			fetched[fe.Path] = true
			if i > 0 && p.Fetch[i-1].Path >= fe.Path {
				t.Fatalf("fetches not sorted: %s before %s", p.Fetch[i-1].Path, fe.Path)
			}
			size, ok := heldSize[fe.Path]
			if !ok {
				t.Fatalf("%s is fetched but not held", fe.Path)
			}
			if size != fe.Size {
				t.Fatalf("%s is fetched with size %d, held with %d", fe.Path, fe.Size, size)
			}
		}
		for path, size := range heldSize {
			have, ok := present[path]
			verified := ok && have.Size == size && have.SHA256 != "" && have.SHA256 == pathSum(path) && !in.VerifyExisting
			if !verified && !fetched[path] {
				t.Fatalf("%s is held, not present as verified, and not fetched", path)
			}
		}
		if p.FetchBytes() < 0 {
			t.Fatalf("negative bytes to fetch")
		}
	})
}

// FuzzTransferSizes: a products file declaring any size for an item whose content has another
// (or the same) length, under any --max-file-size, never panics a run into a memory target; a
// run fails, naming the path, exactly when the size is negative, above the limit, or not the
// content's, and then leaves no lock and publishes nothing.
func FuzzTransferSizes(f *testing.F) {
	old := fetchBackoff
	fetchBackoff = func(int) time.Duration { return 0 }
	f.Cleanup(func() { fetchBackoff = old })
	f.Add(int64(8), uint16(8), int64(0))
	f.Add(int64(9_000_000_000_000_000_000), uint16(8), int64(0))
	f.Add(int64(5<<40), uint16(100), int64(-1))
	f.Add(int64(-1), uint16(0), int64(0))
	f.Add(int64(7), uint16(8), int64(100))
	f.Add(int64(100), uint16(100), int64(99))
	f.Add(int64(60<<30), uint16(3), int64(0))
	f.Fuzz(func(t *testing.T, declared int64, actual uint16, limit int64) {
		ctx := t.Context()
		content := bytes.Repeat([]byte{'z'}, int(actual))
		sum := sha256.Sum256(content)
		const path = "x/amd64/1/boot-kernel"
		products := fmt.Sprintf(`{"content_id":"c","format":"products:1.0","products":{"p":{"arch":"amd64","versions":{"1":{"items":`+
			`{"boot-kernel":{"path":%q,"sha256":%q,"size":%d}}}}}}}`, path, hex.EncodeToString(sum[:]), declared)
		index := `{"format":"index:1.0","index":{"c":{"format":"products:1.0","path":"streams/v1/c.json","products":["p"]}}}`
		src, dst := memstore.New(), memstore.New()
		for k, v := range map[string][]byte{"streams/v1/index.json": []byte(index), "streams/v1/c.json": []byte(products), path: content} {
			if _, err := store.PutBytes(ctx, src, k, v, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Run(ctx, src, dst, Options{Selection: Selection{StartPath: "streams/v1/index.json"}, Limits: Limits{MaxFileSize: limit}, Tuning: Tuning{Concurrency: 1}})
		eff := limit
		if eff == 0 {
			eff = DefaultMaxFileSize
		}
		tooLarge := eff >= 0 && declared > eff
		wantErr := declared < 0 || tooLarge || declared != int64(actual)
		if !wantErr {
			if err != nil {
				t.Fatalf("declared %d, content %d, limit %d: %v", declared, actual, limit, err)
			}
			got, err := store.ReadAll(ctx, dst, path, 0)
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("content not mirrored: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("declared %d, content %d, limit %d: the run succeeded", declared, actual, limit)
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("the error does not name %s: %v", path, err)
		}
		if tooLarge && declared >= 0 && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("declared %d over limit %d: want ErrTooLarge, got %v", declared, eff, err)
		}
		// The lease object stays (it is released by a conditional write, never deleted).
		if data, rerr := store.ReadAll(ctx, dst, LockKey, 0); rerr == nil && !parseLease(data).Released {
			t.Fatalf("the lock is still held after a failed run (%v)", err)
		}
		for _, k := range []string{"streams/v1/index.json", "streams/v1/c.json", path} {
			if ok, _ := store.Exists(ctx, dst, k); ok {
				t.Fatalf("%s is in the target after a failed run (%v)", k, err)
			}
		}
	})
}
