package job

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ssmirror/ssmirror/sync"
)

// What a run that failed or was stopped left in its target, said the same way by the command
// (a signal, a failed run's summary) and the Lambda (a stop before the invocation's deadline).

// published reports whether the run wrote all of its metadata (its publish stage ended).
func published(rep *sync.Report) bool {
	return rep != nil && slices.ContainsFunc(rep.Stages, func(s sync.Stage) bool { return s.Name == sync.StagePublish })
}

// Outcome says how far a failed run got with its publish: "nothing published", "publishing
// cut short (N metadata files written, the rest not)", or "published" (the failure came after:
// while recording the state or deleting).
func Outcome(rep *sync.Report) string {
	switch {
	case published(rep):
		return "published"
	case rep != nil && len(rep.MetadataWritten) > 0:
		return fmt.Sprintf("publishing cut short (%d metadata files written, the rest not)", len(rep.MetadataWritten))
	}
	return "nothing published"
}

// LeftBehind says what a stopped run left in its target and what a rerun does.
func LeftBehind(rep *sync.Report) string {
	switch {
	case rep == nil || rep.Plan == nil:
		return "nothing written; rerun starts over"
	case published(rep):
		return "published; old files not yet deleted; rerun deletes them"
	}
	kept := rep.Fetched + rep.Copied
	files := "files"
	if kept == 1 {
		files = "file"
	}
	if n := len(rep.MetadataWritten); n > 0 {
		return fmt.Sprintf("publishing cut short (%d metadata files written, the rest not); %d %s kept; rerun completes the publish", n, kept, files)
	}
	return fmt.Sprintf("nothing published; %d %s kept; rerun resumes", kept, files)
}

// LeftBehindAll is LeftBehind for every target of a run (names as in Names), a target that
// succeeded said as "published": the one target's words alone, or "NAME: words" joined by "; ".
func LeftBehindAll(names []string, fr *sync.FanOutReport) string {
	if fr == nil {
		return "nothing written; rerun starts over"
	}
	var parts []string
	for i, t := range fr.Targets {
		state := LeftBehind(t.Report)
		if t.Err == nil {
			state = "published"
		}
		if len(fr.Targets) == 1 {
			return state
		}
		name := t.Target
		if i < len(names) {
			name = names[i]
		}
		parts = append(parts, name+": "+state)
	}
	return strings.Join(parts, "; ")
}
