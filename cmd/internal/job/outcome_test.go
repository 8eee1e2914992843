package job

import (
	"errors"
	"testing"

	"github.com/ssmirror/ssmirror/sync"
)

// TestOutcome: a failed or stopped run is said as far as it got. The command's summary used to
// say "FAILED, nothing published" for every failed run, and the Lambda "nothing published" for
// every stop, also after the metadata was written.
func TestOutcome(t *testing.T) {
	planned := &sync.Report{Plan: &sync.Plan{}, Fetched: 3, Stages: []sync.Stage{{Name: "transfer"}}}
	cut := &sync.Report{Plan: &sync.Plan{}, Fetched: 1, MetadataWritten: []string{"streams/v1/a.json", "streams/v1/b.json"}}
	done := &sync.Report{Plan: &sync.Plan{}, MetadataWritten: []string{"streams/v1/index.json"}, Stages: []sync.Stage{{Name: "transfer"}, {Name: "publish metadata"}}}
	for _, tc := range []struct {
		name          string
		rep           *sync.Report
		outcome, left string
	}{
		{"before the plan", nil, "nothing published", "nothing written; rerun starts over"},
		{"during the transfer", planned, "nothing published", "nothing published; 3 files kept; rerun resumes"},
		{"during the publish", cut, "publishing cut short (2 metadata files written, the rest not)", "publishing cut short (2 metadata files written, the rest not); 1 file kept; rerun completes the publish"},
		{"after the publish", done, "published", "published; old files not yet deleted; rerun deletes them"},
	} {
		if got := Outcome(tc.rep); got != tc.outcome {
			t.Errorf("%s: Outcome %q, want %q", tc.name, got, tc.outcome)
		}
		if got := LeftBehind(tc.rep); got != tc.left {
			t.Errorf("%s: LeftBehind %q, want %q", tc.name, got, tc.left)
		}
	}
	fr := &sync.FanOutReport{Targets: []sync.TargetResult{
		{Target: "s3://a/m", Report: done},
		{Target: "/srv/m", Report: planned, Err: errors.New("stopped")},
	}}
	if got, want := LeftBehindAll([]string{"site-a", "site-b"}, fr), "site-a: published; site-b: nothing published; 3 files kept; rerun resumes"; got != want {
		t.Errorf("LeftBehindAll %q, want %q", got, want)
	}
	one := &sync.FanOutReport{Targets: fr.Targets[1:]}
	if got, want := LeftBehindAll([]string{"site-b"}, one), "nothing published; 3 files kept; rerun resumes"; got != want {
		t.Errorf("LeftBehindAll of one target %q, want %q", got, want)
	}
}
