package sync

import (
	"time"

	"github.com/ssmirror/ssmirror/store"
)

// Report says what a run did.
type Report struct {
	Plan *Plan
	// Curated is true when the catalogue was rewritten and signed with the operator's key.
	Curated bool
	// Fetched counts objects downloaded, Copied objects copied inside the target, CopiedFrom
	// objects copied server-side from another target of a fan-out run (RunTargets), Adopted
	// objects found already present and verified. In a fan-out run, Fetched counts the files
	// written into this target from upstream, each read from upstream once for all the targets
	// (FanOutReport.UpstreamBytes).
	Fetched, Copied, CopiedFrom, Adopted       int
	FetchedBytes, CopiedBytes, CopiedFromBytes int64
	// Drifted lists, sorted, the content objects the mirror had recorded that the target's
	// listing showed missing or replaced (another size or ETag): not held any more. Those still
	// referenced are in the plan's Fetch, so the run brings them back before it publishes.
	Drifted []string
	// MetadataWritten lists the metadata objects written, in order.
	MetadataWritten []string
	// Deleted lists the objects garbage-collected, and metadata forms the mirror wrote before
	// that upstream no longer offers (removeStaleForms).
	Deleted []string
	// PendingDeletion counts unreferenced objects still within the grace period.
	PendingDeletion int
	// FreedBytes is what the garbage collection freed: the sizes of the objects deleted, except
	// on a bucket that keeps deleted objects (Versioning), where only the versions purged count
	// (Options.PurgeVersions). VersionsKept counts the deleted objects whose bytes stay there.
	// Versioning is what the target said it does with deleted objects (nil: the run deleted
	// nothing, or the store cannot say).
	FreedBytes   int64
	VersionsKept int
	Versioning   *store.Versioning
	// Stages times each stage.
	Stages []Stage
	// Source is what the run learned of what its source holds: a spoke leaves out the items its
	// hub does not hold (SourceHolds.LeftOut).
	Source SourceHolds
	// Freshness is the freshness record the run wrote (nil: none, a dry or failed run).
	Freshness *Freshness
}

// StagePublish is the name of the publish stage in Report.Stages: a run whose report has it
// wrote all of its metadata.
const StagePublish = "publish metadata"

// Stage is one timed stage of a run.
type Stage struct {
	Name     string
	Duration time.Duration
}

func startStages(rep *Report, now func() time.Time) func(string) {
	last := now()
	return func(name string) {
		t := now()
		rep.Stages = append(rep.Stages, Stage{name, t.Sub(last)})
		last = t
	}
}
