package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/streams"
)

// publish writes the metadata for held: products files first, the index last, so that a reader
// following the index only ever reaches files that exist. An object whose bytes are already
// published is not written again.
func publish(ctx context.Context, dst store.Store, cat *Catalogue, held Held, st *State, rep *Report, opts *Options) error {
	var groups [][]MetaFile
	if opts.Signer == nil {
		for _, pf := range cat.Products {
			groups = append(groups, pf.Forms)
		}
		groups = append(groups, cat.IndexForms)
	} else {
		var err error
		groups, err = curate(cat, held, st, opts)
		if err != nil {
			return err
		}
	}
	for _, group := range groups {
		for _, mf := range group {
			if st.isPublished(mf.Key, mf.Data) {
				continue
			}
			if err := putMeta(ctx, dst, mf, st, rep, opts); err != nil {
				return err
			}
		}
	}
	return nil
}

// isPublished reports whether key is in the target with exactly these bytes, as recorded when it
// was written and confirmed by the listing.
func (st *State) isPublished(key string, data []byte) bool {
	old, ok := st.Published[key]
	if !ok || old.Size != int64(len(data)) {
		return false
	}
	if st.listed != nil { // the target was listed: the object must still be there
		if size, listed := st.listed[key]; !listed || size != old.Size {
			return false
		}
	}
	sum := sha256.Sum256(data)
	return old.SHA256 == hex.EncodeToString(sum[:])
}

// isPublishedGroup reports whether every key is in the target as recorded.
func (st *State) isPublishedGroup(keys ...string) bool {
	for _, key := range keys {
		old, ok := st.Published[key]
		if !ok {
			return false
		}
		if st.listed != nil {
			if size, listed := st.listed[key]; !listed || size != old.Size {
				return false
			}
		}
	}
	return true
}

func putMeta(ctx context.Context, dst store.Store, mf MetaFile, st *State, rep *Report, opts *Options) error {
	if err := store.ValidKey(mf.Key); err != nil {
		return err
	}
	sum := sha256.Sum256(mf.Data)
	pub := Published{Size: int64(len(mf.Data)), SHA256: hex.EncodeToString(sum[:])}
	if err := opts.fence(ctx, "publishing "+mf.Key); err != nil {
		return err
	}
	_, err := dst.Put(ctx, mf.Key, bytes.NewReader(mf.Data), store.PutOptions{
		Size:         pub.Size,
		SHA256:       pub.SHA256,
		ContentType:  streams.ContentType(mf.Key),
		CacheControl: opts.MetadataCacheControl,
	})
	if err != nil {
		return fmt.Errorf("publishing %s: %w", mf.Key, err)
	}
	st.Published[mf.Key] = pub
	rep.MetadataWritten = append(rep.MetadataWritten, mf.Key)
	opts.Log.Info("published", "path", mf.Key)
	return nil
}

// curate rewrites the catalogue to list exactly what held holds and signs it: each products
// file as .json, .json.gpg and .sjson, and the index likewise (its .sjson form names the .sjson
// products files, as upstream's does). A products file already published with the same JSON is
// not signed again, so an unchanged mirror rewrites nothing.
func curate(cat *Catalogue, held Held, st *State, opts *Options) (groups [][]MetaFile, err error) {
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
		forms, err := signForms(pf.Base, doc.Marshal, st, opts)
		if err != nil {
			return nil, err
		}
		groups = append(groups, forms)
		e := *pf.Entry
		e.Products = make([]string, 0, len(keptProducts))
		for p := range keptProducts {
			e.Products = append(e.Products, p)
		}
		sort.Strings(e.Products)
		e.Path = pf.Base + ".json"
		out.Index[pf.ContentID] = &e
		sjsonPaths[pf.ContentID] = pf.Base + ".sjson"
	}
	plain, err := out.Marshal()
	if err != nil {
		return nil, err
	}
	for id, p := range sjsonPaths {
		e := *out.Index[id]
		e.Path = p
		out.Index[id] = &e
	}
	signedBody, err := out.Marshal()
	if err != nil {
		return nil, err
	}
	base := cat.IndexBase
	if st.isPublished(base+".json", plain) && st.isPublishedGroup(base+".json.gpg", base+".sjson") {
		return groups, nil // unchanged: do not sign again
	}
	var sig, clear bytes.Buffer
	if err := opts.Signer.DetachSign(&sig, bytes.NewReader(plain)); err != nil {
		return nil, fmt.Errorf("signing %s.json: %w", base, err)
	}
	if err := opts.Signer.ClearSign(&clear, bytes.NewReader(signedBody)); err != nil {
		return nil, fmt.Errorf("signing %s.sjson: %w", base, err)
	}
	groups = append(groups, []MetaFile{{base + ".json", plain}, {base + ".json.gpg", sig.Bytes()}, {base + ".sjson", clear.Bytes()}})
	return groups, nil
}

// signForms marshals a document and signs it both ways, unless exactly that JSON is already
// published with both signed forms (then nothing needs writing).
func signForms(base string, marshal func() ([]byte, error), st *State, opts *Options) ([]MetaFile, error) {
	body, err := marshal()
	if err != nil {
		return nil, fmt.Errorf("%s.json: %w", base, err)
	}
	if st.isPublished(base+".json", body) && st.isPublishedGroup(base+".json.gpg", base+".sjson") {
		return nil, nil
	}
	var sig, clear bytes.Buffer
	if err := opts.Signer.DetachSign(&sig, bytes.NewReader(body)); err != nil {
		return nil, fmt.Errorf("signing %s.json: %w", base, err)
	}
	if err := opts.Signer.ClearSign(&clear, bytes.NewReader(body)); err != nil {
		return nil, fmt.Errorf("signing %s.sjson: %w", base, err)
	}
	return []MetaFile{{base + ".json", body}, {base + ".json.gpg", sig.Bytes()}, {base + ".sjson", clear.Bytes()}}, nil
}
