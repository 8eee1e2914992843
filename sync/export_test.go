package sync

import "time"

// SetFanOutPatience sets how long a late target of a fan-out run may hold the others back, for
// a test; the returned function puts it back.
func SetFanOutPatience(d time.Duration) (restore func()) {
	old := fanOutPatience
	fanOutPatience = d
	return func() { fanOutPatience = old }
}
