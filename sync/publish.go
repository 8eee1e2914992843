package sync

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
)

// publish writes the metadata for held: products files first, the index last, so that a reader
// following the index only ever reaches files that exist. An object whose bytes are already
// published is not written again.
func (r *run) publish(ctx context.Context) error {
	cat, st := r.cat, r.st
	var groups [][]MetaFile
	if r.opts.Signer == nil {
		for _, pf := range cat.Products {
			groups = append(groups, pf.Forms)
		}
		groups = append(groups, cat.IndexForms)
	} else {
		var err error
		groups, err = r.curate(r.plan.Held)
		if err != nil {
			return err
		}
	}
	checked := false
	for _, group := range groups {
		for _, mf := range group {
			if st.isPublished(mf.Key, mf.Data) {
				continue
			}
			if !checked {
				if err := r.checkHeldPresent(ctx); err != nil {
					return err
				}
				checked = true
			}
			if err := r.putMeta(ctx, mf); err != nil {
				return err
			}
		}
	}
	if r.opts.Signer == nil {
		// Curated publishing writes every form of each document it publishes; verbatim
		// publishing writes the forms upstream offers now, which may be fewer than before.
		return r.removeStaleForms(ctx, groups)
	}
	return nil
}

// ErrHeldGone is wrapped by the error of a run that found, just before publishing, a content
// object its metadata would name missing from the target or not as written (deleted or replaced
// behind its back since it listed or wrote it). Nothing is published; the next run lists the
// target again and fetches what is missing.
var ErrHeldGone = errors.New("content gone from the target before publishing")

// checkHeldPresent lists the target once more (one request per 1,000 objects on S3) right
// before the first metadata write, and refuses to publish when a content object the new
// metadata names is missing or is not the object recorded (size, or the store's version tag
// when both are known). It closes the window between the run's first listing (and its own
// writes) and the publish, in which someone else may delete or replace objects. A run with
// nothing to publish does not list again.
func (r *run) checkHeldPresent(ctx context.Context) error {
	if r.opts.NoItemDownload {
		return nil // a metadata-only mirror holds no content
	}
	listed, err := listTarget(ctx, r.dst)
	if err != nil {
		return fmt.Errorf("checking the content is in place before publishing: %w", err)
	}
	var gone []string
	for path := range r.plan.Held.Paths() {
		rec, recorded := r.st.Objects[path]
		info, ok := listed[path]
		var why string
		switch {
		case !ok:
			why = "missing"
		case recorded && info.Size != rec.Size:
			why = fmt.Sprintf("%d bytes, %d written", info.Size, rec.Size)
		case recorded && !SameVersion(rec.ETag, info.ETag):
			why = "replaced: another version tag"
		default:
			continue
		}
		gone = append(gone, path+" ("+why+")")
		delete(r.st.Objects, path) // not the mirror's verified object any more
	}
	if len(gone) == 0 {
		return nil
	}
	sort.Strings(gone)
	more := ""
	if len(gone) > 3 {
		more = fmt.Sprintf(" and %d more", len(gone)-3)
		gone = gone[:3]
	}
	return fmt.Errorf("%w: %s%s in %s (deleted or replaced after this run listed or wrote it); nothing published; the next run fetches it again",
		ErrHeldGone, strings.Join(gone, ", "), more, store.Describe(r.dst))
}

// removeStaleForms deletes, once the new index is in place, the forms of the documents just
// published (the index and each products file) that the mirror wrote earlier and that this run
// did not: upstream stopped offering them, or the target was curated before. Such a form is an
// older generation of a document the new index still names: a reader starting from it (MAAS
// starts from index.sjson) would see the old catalogue for ever, whose content is collected
// after the grace period. The index's forms go first, so that no reader reaches a products form
// through an index form still there. Objects the mirror did not write are left alone.
func (r *run) removeStaleForms(ctx context.Context, groups [][]MetaFile) error {
	cat, st := r.cat, r.st
	current := map[string]bool{}
	for _, group := range groups {
		for _, mf := range group {
			current[mf.Key] = true
		}
	}
	var stale []string
	for _, base := range append([]string{cat.IndexBase}, productBases(cat)...) {
		for _, e := range metadataForms {
			if key := base + e; !current[key] {
				if _, wrote := st.Published[key]; wrote {
					stale = append(stale, key)
				}
			}
		}
	}
	for _, key := range stale {
		if err := fence(ctx, r.lock, "deleting "+key); err != nil {
			return err
		}
		if err := r.dst.Delete(ctx, key); err != nil {
			return fmt.Errorf("removing %s, a metadata form upstream no longer offers: %w", key, err)
		}
		delete(st.Published, key)
		r.rep.Deleted = append(r.rep.Deleted, key)
		r.opts.Log.Info("deleted a metadata form upstream no longer offers", "path", key)
	}
	return nil
}

// productBases lists the base of every products file of cat.
func productBases(cat *Catalogue) []string {
	bases := make([]string, 0, len(cat.Products))
	for _, pf := range cat.Products {
		bases = append(bases, pf.Base)
	}
	return bases
}

func (r *run) putMeta(ctx context.Context, mf MetaFile) error {
	st := r.st
	if err := store.ValidKey(mf.Key); err != nil {
		return err
	}
	pub := Published{Size: int64(len(mf.Data)), SHA256: hexSHA256(mf.Data)}
	if err := fence(ctx, r.lock, "publishing "+mf.Key); err != nil {
		return err
	}
	info, err := r.dst.Put(ctx, mf.Key, bytes.NewReader(mf.Data), store.PutOptions{
		Size:         pub.Size,
		SHA256:       pub.SHA256,
		ContentType:  streams.ContentType(mf.Key),
		CacheControl: r.opts.MetadataCacheControl,
	})
	if err != nil {
		return fmt.Errorf("publishing %s: %w", mf.Key, err)
	}
	pub.Updated = st.stamps[mf.Key]
	pub.ETag = info.ETag
	st.Published[mf.Key] = pub
	// The key may have held content the mirror released (upstream reused its path for
	// metadata): it is metadata now, never to be collected as that content.
	delete(st.Objects, mf.Key)
	delete(st.Unreferenced, mf.Key)
	r.rep.MetadataWritten = append(r.rep.MetadataWritten, mf.Key)
	r.opts.Log.Info("published", "path", mf.Key)
	return nil
}

// curate rewrites the catalogue to list exactly what held holds and signs it: each products
// file as .json, .json.gpg and .sjson, and the index likewise (its .sjson form names the .sjson
// products files, as upstream's does). A document's "updated" is the stamp it was last published
// with while its curated content stays the same, and the run's time once it changes; so an
// unchanged mirror rewrites (and signs) nothing, and a client sees a new stamp with new content.
// Index entries carry their products file's stamp.
func (r *run) curate(held Held) (groups [][]MetaFile, err error) {
	cat := r.cat
	out := &streams.Index{Format: cat.Index.Format, Updated: cat.Index.Updated, Index: map[string]*streams.IndexEntry{}, Extra: cat.Index.Extra}
	sjsonPaths := map[string]string{}
	for _, pf := range cat.Products {
		keptProducts := map[string]bool{}
		doc := pf.Doc.Prune(func(product, version, item string) bool {
			_, ok := held[VersionKey{pf.ContentID, product, version}][item]
			if ok {
				keptProducts[product] = true
			}
			return ok
		})
		if len(doc.Products) == 0 {
			continue
		}
		upstreamStamp, _ := rawJSONString(doc.Attrs["updated"])
		forms, stamp, err := r.signCurated(pf.Base, upstreamStamp, func(updated string) ([]byte, []byte, error) {
			raw, err := json.Marshal(updated)
			if err != nil {
				return nil, nil, err
			}
			doc.Attrs["updated"] = raw
			body, err := doc.Marshal()
			return body, body, err
		})
		if err != nil {
			return nil, err
		}
		groups = append(groups, forms)
		e := *pf.Entry
		e.Updated = stamp
		e.Products = make([]string, 0, len(keptProducts))
		for p := range keptProducts {
			e.Products = append(e.Products, p)
		}
		sort.Strings(e.Products)
		e.Path = pf.Base + ".json"
		out.Index[pf.ContentID] = &e
		sjsonPaths[pf.ContentID] = pf.Base + ".sjson"
	}
	forms, _, err := r.signCurated(cat.IndexBase, cat.Index.Updated, func(updated string) ([]byte, []byte, error) {
		ix := *out
		ix.Updated = updated
		ix.Index = make(map[string]*streams.IndexEntry, len(out.Index))
		for id, e := range out.Index {
			ix.Index[id] = e
		}
		plain, err := ix.Marshal()
		if err != nil {
			return nil, nil, err
		}
		for id, p := range sjsonPaths {
			e := *ix.Index[id]
			e.Path = p
			ix.Index[id] = &e
		}
		signed, err := ix.Marshal()
		return plain, signed, err
	})
	if err != nil {
		return nil, err
	}
	return append(groups, forms), nil
}

// signCurated makes the three forms of the curated document at base: base.json (plain, with a
// detached signature base.json.gpg) and base.sjson (signed, clearsigned), as marshal writes them
// for an "updated" stamp. The stamp is the one the document was last published with (fallback,
// upstream's, when none is recorded) if the document is then exactly as published: nothing needs
// writing and no forms are returned. Otherwise the content changed, and the forms are made with
// a new stamp: the run's time, later than the previous stamp.
func (r *run) signCurated(base, fallback string, marshal func(updated string) (plain, signed []byte, err error)) ([]MetaFile, string, error) {
	st := r.st
	key := base + ".json"
	prev := st.Published[key].Updated
	if prev == "" {
		prev = fallback
	}
	stamp := ""
	if prev != "" {
		plain, _, err := marshal(prev)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", key, err)
		}
		if st.isPublished(key, plain) && st.isPublishedGroup(base+".json.gpg", base+".sjson") {
			if pub := st.Published[key]; pub.Updated != prev {
				pub.Updated = prev
				st.Published[key] = pub
			}
			return nil, prev, nil // unchanged: do not sign again
		}
		if pub, ok := st.Published[key]; ok && pub.Size == int64(len(plain)) && pub.SHA256 == hexSHA256(plain) {
			// The content is what was published, but a form is missing or was replaced behind
			// the mirror's back: write it again as it was, with the same stamp.
			stamp = prev
		}
	}
	if stamp == "" {
		stamp = nextStamp(prev, r.opts.Now())
	}
	plain, signed, err := marshal(stamp)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", key, err)
	}
	var sig, clear bytes.Buffer
	if err := r.opts.Signer.DetachSign(&sig, bytes.NewReader(plain)); err != nil {
		return nil, "", fmt.Errorf("signing %s: %w", key, err)
	}
	if err := r.opts.Signer.ClearSign(&clear, bytes.NewReader(signed)); err != nil {
		return nil, "", fmt.Errorf("signing %s.sjson: %w", base, err)
	}
	if st.stamps == nil {
		st.stamps = map[string]string{}
	}
	st.stamps[key] = stamp
	return []MetaFile{{key, plain}, {base + ".json.gpg", sig.Bytes()}, {base + ".sjson", clear.Bytes()}}, stamp, nil
}

// StampLayout is how SimpleStreams writes "updated" (RFC 2822, as MAAS parses it:
// "%a, %d %b %Y %H:%M:%S %z").
const StampLayout = time.RFC1123Z

// nextStamp is now as an "updated" stamp (UTC, whole seconds), or a second after prev when now
// is not later than prev (a clock behind, or two changes within a second), so that a document's
// stamp only moves forward.
func nextStamp(prev string, now time.Time) string {
	t := now.UTC().Truncate(time.Second)
	if p, err := time.Parse(StampLayout, prev); err == nil && !t.After(p) {
		t = p.UTC().Add(time.Second)
	}
	return t.Format(StampLayout)
}

// rawJSONString decodes a raw JSON string value.
func rawJSONString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// freshness builds the record of this run, once its metadata is published at published (prev:
// the publish before, nil for the first).
func (r *run) freshness(published time.Time, prev *time.Time) *Freshness {
	cat, st := r.cat, r.st
	f := &Freshness{
		Format:    FreshnessFormat,
		Generator: r.opts.Freshness.Generator,
		Upstream:  r.opts.Freshness.Upstream,
		Mode:      "verbatim",
		Index:     cat.StartPath,
		Products:  []FreshnessProducts{},
		Metadata:  []FreshnessFile{},
		Published: published.UTC().Truncate(time.Second),
	}
	if prev != nil {
		p := prev.UTC()
		f.PreviousPublished = &p
	}
	if r.opts.Signer != nil {
		f.Mode = "curated"
		f.SigningKey = r.opts.Signer.Fingerprint()
	} else if kr := r.opts.Verification.Keyring; kr != nil {
		f.UpstreamKeys = kr.Fingerprints()
	}
	f.IndexUpdated = cat.Index.Updated
	if pub, ok := st.Published[cat.IndexBase+".json"]; ok {
		f.Index = cat.IndexBase + ".json"
		f.IndexUpdated = cmp.Or(pub.Updated, f.IndexUpdated)
	}
	newest := map[string]string{}
	for vk := range r.plan.Held {
		if vk.Version > newest[vk.ContentID] {
			newest[vk.ContentID] = vk.Version
		}
	}
	for _, pf := range cat.Products {
		key := pf.Base + ".json"
		pub, published := st.Published[key]
		if !published {
			if _, signed := st.Published[pf.Base+".sjson"]; !signed {
				continue // not published (curated: the mirror holds nothing of it)
			}
			key = pf.Base + ".sjson"
		}
		updated := "" // the index entry's (verbatim: the parsed document is not kept)
		if pf.Entry != nil {
			updated = pf.Entry.Updated
		}
		f.Products = append(f.Products, FreshnessProducts{
			ContentID: pf.ContentID, Path: key, Updated: cmp.Or(pub.Updated, updated), NewestVersion: newest[pf.ContentID],
		})
	}
	for key, pub := range st.Published {
		f.Metadata = append(f.Metadata, FreshnessFile{Path: key, Size: pub.Size, SHA256: pub.SHA256})
	}
	sort.Slice(f.Metadata, func(i, j int) bool { return f.Metadata[i].Path < f.Metadata[j].Path })
	if !r.opts.NoItemDownload { // a metadata-only mirror holds no content
		for path := range r.plan.Held.Paths() {
			f.Files++
			f.Bytes += r.plan.Held.size(path)
		}
	}
	return f
}

// size is the size of the held content at path (0 when none holds it).
func (h Held) size(path string) int64 {
	for _, hv := range h {
		for _, it := range hv {
			if it.Path == path {
				return it.Size
			}
		}
	}
	return 0
}

// needsFreshness reports whether the run writes a freshness record: when it published
// metadata, or when the record is missing, was replaced behind the mirror's back, or is not in
// the mode's form (curated mirrors also have the signed form). An up-to-date run writes nothing,
// as before.
func (r *run) needsFreshness() bool {
	st := r.st
	if len(r.rep.MetadataWritten) > 0 || st.Freshness == nil || !st.stillListed(FreshnessKey, st.Freshness.published()) {
		return true
	}
	curated := r.opts.Signer != nil
	_, signedListed := st.listed[FreshnessSignedKey]
	return st.Freshness.Signed != curated || (st.listed != nil && signedListed != curated)
}

// writeFreshness writes the run's freshness record after the metadata (and, curated, its
// clearsigned form), fenced like every write readers see, when the run published metadata or
// the record is not as last written (needsFreshness).
func (r *run) writeFreshness(ctx context.Context) error {
	if !r.needsFreshness() {
		return nil
	}
	published, prev := r.opts.Now(), (*time.Time)(nil)
	if w := r.st.Freshness; w != nil {
		if len(r.rep.MetadataWritten) == 0 {
			// Written again (missing, replaced, or not in the mode's form): the same publish.
			published, prev = w.Time, w.Previous
		} else {
			prev = &w.Time
		}
	}
	f := r.freshness(published, prev)
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	cc := FreshnessCacheControl(cmp.Or(r.opts.MetadataCacheControl, DefaultMetadataCacheControl))
	put := func(key string, body []byte) (store.Info, error) {
		if err := fence(ctx, r.lock, "writing "+key); err != nil {
			return store.Info{}, err
		}
		info, err := store.PutBytes(ctx, r.dst, key, body, store.PutOptions{
			SHA256: hexSHA256(body), ContentType: "application/json", CacheControl: cc,
		})
		if err != nil {
			return info, fmt.Errorf("writing the freshness record %s: %w", key, err)
		}
		return info, nil
	}
	curated := r.opts.Signer != nil
	if curated {
		var clear bytes.Buffer
		if err := r.opts.Signer.ClearSign(&clear, bytes.NewReader(data)); err != nil {
			return fmt.Errorf("signing %s: %w", FreshnessSignedKey, err)
		}
		if _, err := put(FreshnessSignedKey, clear.Bytes()); err != nil {
			return err
		}
	} else if _, listed := r.st.listed[FreshnessSignedKey]; listed || (r.st.Freshness != nil && r.st.Freshness.Signed) {
		// Curated before: a signed record of an earlier run would outlive the plain one.
		if err := fence(ctx, r.lock, "deleting "+FreshnessSignedKey); err != nil {
			return err
		}
		if err := r.dst.Delete(ctx, FreshnessSignedKey); err != nil && !errors.Is(err, store.ErrNotExist) {
			return fmt.Errorf("removing %s (the mirror is not curated any more): %w", FreshnessSignedKey, err)
		}
	}
	info, err := put(FreshnessKey, data)
	if err != nil {
		return err
	}
	r.st.Freshness = &FreshnessWritten{
		Size: int64(len(data)), SHA256: hexSHA256(data), Tag: info.ETag,
		Time: f.Published, Previous: f.PreviousPublished, Signed: curated,
	}
	r.rep.Freshness = f
	r.opts.Log.Info("published", "path", FreshnessKey)
	return nil
}
