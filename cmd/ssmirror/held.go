package main

import (
	"fmt"
	"strings"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

// What a mirror holds and what its deletions freed, as the summaries of sync, status and gc
// and the metrics tell it.

// heldTotals counts what a Held set holds. Files and bytes count each distinct path once (two
// versions may share a file).
type heldTotals struct {
	Products int   `json:"products"`
	Versions int   `json:"versions"`
	Items    int   `json:"items"`
	Files    int   `json:"files"`
	Bytes    int64 `json:"bytes"`
}

func totalsOf(h sync.Held) heldTotals {
	var t heldTotals
	products := map[[2]string]bool{}
	paths := map[string]bool{}
	for vk, hv := range h {
		products[[2]string{vk.ContentID, vk.Product}] = true
		t.Versions++
		for _, it := range hv {
			t.Items++
			if it.Path != "" && !paths[it.Path] {
				paths[it.Path] = true
				t.Files++
				t.Bytes += it.Size
			}
		}
	}
	t.Products = len(products)
	return t
}

// versioningWords describes a bucket that keeps deleted objects.
func versioningWords(v store.Versioning) string {
	var parts []string
	if v.Status != "" {
		parts = append(parts, "versioning "+strings.ToLower(v.Status))
	}
	if v.ObjectLock {
		parts = append(parts, "object lock")
	}
	return "bucket with " + strings.Join(parts, " and ")
}

// freedNote says, for the summaries, when deletions did not free what they deleted: a versioned
// or object-locked bucket keeps their bytes (or the store could not say whether it does). A
// plain deletion needs no note (the JSON summary has freed_bytes).
func freedNote(freed int64, kept int, v *store.Versioning) string {
	switch {
	case kept == 0:
		return ""
	case v != nil && v.KeepsDeleted():
		return fmt.Sprintf(" (only %s freed: a %s keeps %d of them as noncurrent versions behind delete markers; see --gc-purge-versions)", humanBytes(freed), versioningWords(*v), kept)
	}
	return fmt.Sprintf(" (%d of them maybe not freed: the store could not say whether it keeps deleted objects)", kept)
}
