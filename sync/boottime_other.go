//go:build !linux

package sync

import "time"

// bootTime is 0 where there is no CLOCK_BOOTTIME: only the other clocks are used.
func bootTime() time.Duration { return 0 }
