package main

import (
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// buildRevision may be set at link time (-ldflags "-X main.buildRevision=…") for builds where
// the go command cannot stamp the VCS revision (a source tarball, a git worktree).
var buildRevision string

// versionLine is what `ssmirror version` prints: the module version and the VCS revision the
// binary was built from (with its commit time, and "modified" for a dirty tree), and the Go
// version.
func versionLine(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "ssmirror dev (no build information)"
	}
	ver := bi.Main.Version
	if ver == "" || ver == "(devel)" {
		ver = "dev"
	}
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		rev = buildRevision
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ssmirror %s", ver)
	switch {
	case rev != "":
		fmt.Fprintf(&b, " revision %s", rev)
		if when != "" {
			fmt.Fprintf(&b, " (%s)", when)
		}
		if modified {
			b.WriteString(" modified")
		}
	default:
		b.WriteString(" (revision unknown: built without VCS information)")
	}
	if bi.GoVersion != "" {
		fmt.Fprintf(&b, " %s", bi.GoVersion)
	}
	return b.String()
}

func printVersion() string {
	bi, ok := debug.ReadBuildInfo()
	return versionLine(bi, ok)
}

// manDate is the man page's date: the commit time of the build's VCS revision, else today, so
// that a build's man page does not change from one day to the next.
func manDate() time.Time {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t
				}
			}
		}
	}
	return time.Now()
}

// version is the module version of the build ("dev" outside a released module).
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
