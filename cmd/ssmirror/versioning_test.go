package main

import (
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/store"
)

// TestFreedNote: the summaries never call freed what a versioned or object-locked bucket keeps.
func TestFreedNote(t *testing.T) {
	for _, tc := range []struct {
		freed int64
		kept  int
		v     *store.Versioning
		want  string
	}{
		{1024, 0, nil, ""},
		{1024, 0, &store.Versioning{}, ""},
		{0, 3, &store.Versioning{Status: "Enabled"}, "(only 0 B freed: a bucket with versioning enabled keeps 3 of them"},
		{0, 2, &store.Versioning{Status: "Enabled", ObjectLock: true}, "bucket with versioning enabled and object lock keeps 2"},
		{0, 2, nil, "2 of them maybe not freed"},
	} {
		got := freedNote(tc.freed, tc.kept, tc.v)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("freedNote(%d, %d, %+v) = %q, want %q", tc.freed, tc.kept, tc.v, got, tc.want)
		}
	}
}
