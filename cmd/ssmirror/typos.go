package main

import (
	"fmt"
	"io"
	"slices"
	gosync "sync"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
)

// Loud typos: settings that would otherwise be ignored or misread are named, with what was
// probably meant.

// extraEnvNames are the SSMIRROR_* variables read besides the flags' own and
// cliconfig.BaseEnvNames.
var extraEnvNames = []string{
	"CPUPROFILE",
	// cmd/ssmirror-lambda's own; an environment shared with it is not a typo.
	"KEYRING_DATA", "SAFETY_MARGIN",
	// the test scripts'.
	"TEST_BIN", "FUZZTIME",
}

// knownEnvNames are every SSMIRROR_* variable of every command.
func knownEnvNames() []string {
	var sets []*pflag.FlagSet
	for _, c := range commandTable() {
		sets = append(sets, commandFlags(c))
	}
	return cliconfig.KnownEnv(append(slices.Clone(cliconfig.BaseEnvNames), extraEnvNames...), sets...)
}

// unknownEnv returns a warning for each SSMIRROR_* variable of environ that ssmirror does not
// read, with the nearest name it does read.
func unknownEnv(environ []string) []string {
	var warnings []string
	for _, u := range cliconfig.UnknownEnv(environ, knownEnvNames) {
		msg := fmt.Sprintf("$%s is not a setting of ssmirror and is ignored", u.Name)
		if u.Near != "" {
			msg += fmt.Sprintf(" (did you mean $%s?)", u.Near)
		}
		warnings = append(warnings, msg)
	}
	return warnings
}

// isSettingKey reports whether k is a config file key (source, target, or a flag of any
// command).
func isSettingKey(k string) bool {
	return k == "source" || k == "target" || settingKeys()[k]
}

// settingKeys are the flags of every command, read once: commandFlags goes through a global
// hook, so this must first run before several mirrors run at once (runMirrors sees to it).
func settingKeys() map[string]bool {
	settingKeysOnce.Do(func() {
		settingKeysSet = map[string]bool{}
		for _, c := range commandTable() {
			commandFlags(c).VisitAll(func(f *pflag.Flag) { settingKeysSet[f.Name] = true })
		}
	})
	return settingKeysSet
}

var (
	settingKeysOnce gosync.Once
	settingKeysSet  map[string]bool
)

// warnAll prints each warning.
func warnAll(w io.Writer, warnings []string) {
	for _, m := range warnings {
		warn(w, "%s", m)
	}
}
