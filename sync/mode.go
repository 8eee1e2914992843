package sync

import (
	"fmt"

	"github.com/ssmirror/ssmirror/store"
)

// A target keeps the mode it is published in. Clients of a curated mirror trust the mirror's
// key; clients of a verbatim one trust upstream's. A run that published a curated target
// verbatim (a forgotten --signing-key), signed it with another key, or curated a verbatim one
// would leave every client configured for the old mode rejecting the mirror, so the state
// records the mode (Mode) and a run that would change it is refused (ModeChangeError) unless
// Options.AllowModeChange says the change is meant.

// modeOf is the mode a run with opts publishes in.
func modeOf(opts Options) Mode {
	if opts.Signer == nil {
		return Mode{Publish: ModeVerbatim}
	}
	return Mode{Publish: ModeCurated, SigningKey: opts.Signer.Fingerprint()}
}

// RecordedMode is the mode the state says the target is published in: the recorded one, or for
// a state written before modes were recorded the one its published metadata shows (curated
// .json forms carry an "updated" stamp of the mirror's own); nil for a target never published.
func (s *State) RecordedMode() *Mode {
	if s.Mode != nil {
		return s.Mode
	}
	if len(s.Published) == 0 {
		return nil
	}
	for _, p := range s.Published {
		if p.Updated != "" {
			return &Mode{Publish: ModeCurated}
		}
	}
	return &Mode{Publish: ModeVerbatim}
}

// ModeChangeError refuses a run that would publish a target in another mode than it is
// published in.
type ModeChangeError struct {
	Target           string
	Recorded, Wanted Mode
}

func (e *ModeChangeError) Error() string {
	why := "clients that trust the mirror's key would reject upstream's signatures"
	switch {
	case e.Recorded.Publish == ModeVerbatim:
		why = "clients that trust upstream's keyring would reject the mirror's signatures"
	case e.Wanted.Publish == ModeCurated:
		why = "clients that trust the current key would reject the new one"
	}
	return fmt.Sprintf("%s is published %s; this run would publish it %s, and %s: nothing was written", e.Target, e.Recorded, e.Wanted, why)
}

// checkMode refuses (ModeChangeError) a run that would change the target's mode, unless the
// options allow it.
func checkMode(dst store.Target, st *State, opts Options) error {
	rec := st.RecordedMode()
	if rec == nil || opts.AllowModeChange {
		return nil
	}
	want := modeOf(opts)
	if rec.Publish == want.Publish && (rec.SigningKey == "" || rec.SigningKey == want.SigningKey) {
		return nil
	}
	return &ModeChangeError{Target: store.Describe(dst), Recorded: *rec, Wanted: want}
}
