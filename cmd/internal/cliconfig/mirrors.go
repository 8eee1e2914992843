package cliconfig

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	gosync "sync"

	"github.com/spf13/pflag"
)

// Several mirrors in one config file.
//
// A config file may hold [mirror NAME] sections, each one mirror: its own source and target,
// its own [filter] groups (a [filter] after a [mirror] header belongs to that mirror) and any
// other setting. The settings at the top of the file, before the first [mirror] header, are
// shared: they apply to every mirror that does not set the same key itself (a key set in a
// section replaces every value the top gives it, repeatable keys included). The layering is
// then, for each mirror:
//
//	command-line flag > $SSMIRROR_<FLAG> > the [mirror] section > the top of the file > default
//
// that is, the file's rule (flags and the environment win over the file) with the section
// winning over the top. A flag or variable given explicitly applies to every mirror.
//
//	keyring = /etc/ssmirror/ubuntu-cloudimage-keyring.gpg
//	s3-endpoint = http://minio.example.internal:9000
//	max = 1
//
//	[mirror stable]
//	source = https://images.maas.io/ephemeral-v3/stable/
//	target = s3://maas-images/ephemeral-v3/stable
//	[filter]
//	arch=amd64
//
//	[mirror lxd]
//	source = https://images.lxd.canonical.com/
//	target = s3://lxd-images/
//	no-verify = true
//	max = 2
//
// Mistakes are refused before anything runs, named FILE:LINE: a section without a source or a
// target, two sections of one name, source, target or a [filter] at the top of a file that has
// sections (they belong to a mirror), a key that is not a setting, and a mirror picked with
// --only-mirror that no section names. $SSMIRROR_SOURCE, $SSMIRROR_TARGET and $SSMIRROR_FILTERS
// are refused with such a file (each mirror names its own).

// mirrorNameRE is what a mirror's name may be: it appears in logs, metrics and JSON keys.
var mirrorNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// mirrorHeader recognises a [mirror NAME] header (name possibly empty or malformed, checked by
// addMirror).
func mirrorHeader(line string) (name string, ok bool) {
	inner, ok := strings.CutPrefix(line, "[mirror")
	if !ok || !strings.HasSuffix(inner, "]") {
		return "", false
	}
	inner = strings.TrimSuffix(inner, "]")
	if inner != "" && inner[0] != ' ' && inner[0] != '\t' {
		return "", false // [mirrors], [mirrorx]: an unknown section
	}
	return strings.TrimSpace(inner), true
}

// addMirror starts the [mirror NAME] section on line n.
func (cf *configFile) addMirror(name string, n int) (*mirrorSection, error) {
	switch {
	case name == "":
		return nil, fmt.Errorf("%s:%d: [mirror] needs a name: [mirror NAME]", cf.path, n)
	case !mirrorNameRE.MatchString(name):
		return nil, fmt.Errorf("%s:%d: [mirror %s]: a mirror's name is letters, digits, '.', '_' and '-'", cf.path, n, name)
	}
	for _, m := range cf.mirrors {
		if m.name == name {
			return nil, fmt.Errorf("%s:%d: [mirror %s] again (first on line %d): each mirror has one section", cf.path, n, name, m.line)
		}
	}
	m := &mirrorSection{name: name, line: n}
	cf.mirrors = append(cf.mirrors, m)
	return m, nil
}

// fileWideKeys are settings of the whole file, refused inside a [mirror] section.
var fileWideKeys = map[string]string{
	ParallelMirrorsFlag: "it says how many mirrors run at once",
}

// checkMirrors refuses what a file with [mirror] sections cannot mean. firstTopFilter is the
// line of a [filter] header before the first [mirror] (0: none).
func (cf *configFile) checkMirrors(firstTopFilter int) error {
	for _, s := range cf.settings {
		if s.key == OnlyMirrorFlag {
			return fmt.Errorf("%s:%d: %s picks mirrors for one run: give it as --%s or $%s, not in the file", cf.path, s.line, s.key, OnlyMirrorFlag, EnvName(OnlyMirrorFlag))
		}
	}
	if len(cf.mirrors) == 0 {
		return nil
	}
	for _, s := range cf.settings {
		if s.key == "source" || s.key == "target" {
			return fmt.Errorf("%s:%d: %s at the top of a file with [mirror] sections: put it in the [mirror] section it belongs to (the top holds only the settings every mirror shares)", cf.path, s.line, s.key)
		}
	}
	if firstTopFilter > 0 {
		return fmt.Errorf("%s:%d: [filter] before the first [mirror] section: put it after the [mirror NAME] header of the mirror it selects for", cf.path, firstTopFilter)
	}
	if len(cf.places) > 0 {
		p := cf.places[0]
		return fmt.Errorf("%s:%d: [%s] before the first [mirror] section: put it after the [mirror NAME] header of the mirror it belongs to", cf.path, p.line, p.kind)
	}
	for _, m := range cf.mirrors {
		has := map[string]bool{}
		for _, p := range m.places {
			has[p.kind] = true
		}
		for _, s := range m.settings {
			if why, ok := fileWideKeys[s.key]; ok {
				return fmt.Errorf("%s:%d: %s in [mirror %s]: %s, so it goes at the top of the file", cf.path, s.line, s.key, m.name, why)
			}
			has[s.key] = true
		}
		for _, k := range []string{"source", "target"} {
			if !has[k] {
				return fmt.Errorf("%s:%d: [mirror %s] has no %s", cf.path, m.line, m.name, k)
			}
		}
		for i, g := range m.groups {
			if len(g) == 0 {
				return fmt.Errorf("%s: [mirror %s]: [filter] section %d is empty (it would select everything)", cf.path, m.name, i+1)
			}
		}
	}
	return nil
}

// forMirror is the file as one mirror sees it: the top's settings, those the section sets
// replaced by the section's, and the section's [filter] groups. name "" is the file itself,
// refused when it has sections (which mirror?).
func (cf *configFile) forMirror(name string) (*configFile, error) {
	if name == "" {
		if len(cf.mirrors) > 0 {
			return nil, fmt.Errorf("%s holds [mirror] sections (%s): this command reads one mirror's settings; run them with 'ssmirror sync --config %s'", cf.path, strings.Join(cf.mirrorNames(), ", "), cf.path)
		}
		return cf, nil
	}
	i := slices.IndexFunc(cf.mirrors, func(m *mirrorSection) bool { return m.name == name })
	if i < 0 {
		return nil, fmt.Errorf("%s", unknownMirror(cf.path, name, cf.mirrorNames()))
	}
	m := cf.mirrors[i]
	own := map[string]bool{}
	for _, s := range m.settings {
		own[s.key] = true
	}
	out := &configFile{path: cf.path, groups: m.groups, places: m.places}
	for _, s := range cf.settings {
		if !own[s.key] {
			out.settings = append(out.settings, s)
		}
	}
	out.settings = append(out.settings, m.settings...)
	return out, nil
}

func (cf *configFile) mirrorNames() []string {
	names := make([]string, len(cf.mirrors))
	for i, m := range cf.mirrors {
		names[i] = m.name
	}
	return names
}

func unknownMirror(path, name string, names []string) string {
	msg := fmt.Sprintf("no [mirror %s] in %s (its mirrors: %s)", name, path, strings.Join(names, ", "))
	if near := NearestName(EnvPrefix+name, prefixed(names)); near != "" {
		msg += fmt.Sprintf("; did you mean %s?", strings.TrimPrefix(near, EnvPrefix))
	}
	return msg
}

func prefixed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = EnvPrefix + n
	}
	return out
}

// The flags that pick and pace the mirrors of a config file with [mirror] sections.
const (
	OnlyMirrorFlag      = "only-mirror"
	ParallelMirrorsFlag = "parallel-mirrors"
)

// MirrorFlags pick which [mirror] sections of the config file run, and how many at once.
type MirrorFlags struct {
	Only     []string
	Parallel int
}

// AddFlags adds --only-mirror and --parallel-mirrors to fs.
func (m *MirrorFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&m.Only, OnlyMirrorFlag, nil, "with a config file of [mirror NAME] sections: run only the mirror NAME (repeatable; default: every section, in the file's order)")
	fs.IntVar(&m.Parallel, ParallelMirrorsFlag, 1, "with a config file of [mirror NAME] sections: run up to N mirrors at once (default 1: one after the other)")
}

// ConfigPath is the config file the parsed fs names: --config, else $SSMIRROR_CONFIG ("": none).
func ConfigPath(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) string {
	f := fs.Lookup(ConfigFlag)
	if f == nil {
		return ""
	}
	if f.Changed {
		return f.Value.String()
	}
	v, _ := lookupEnv(EnvName(ConfigFlag))
	return v
}

// Mirrors returns the names of the [mirror] sections of the config file the parsed fs names
// (none: no file, or a file that is one mirror), checked: a file with sections is refused with
// $SSMIRROR_SOURCE, $SSMIRROR_TARGET or $SSMIRROR_FILTERS set. Without sections --only-mirror
// is refused: there is nothing to pick. isSetting is as for Configure.
func Mirrors(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), isSetting func(string) bool) ([]string, error) {
	if isSetting == nil {
		isSetting = func(k string) bool { return k == "source" || k == "target" || fs.Lookup(k) != nil }
	}
	var names []string
	path := ConfigPath(fs, lookupEnv)
	if path != "" {
		cf, err := loadConfigFile(path, isSetting)
		if err != nil {
			return nil, UsageError{err}
		}
		names = cf.mirrorNames()
	}
	if len(names) == 0 {
		if fs.Changed(OnlyMirrorFlag) || envSet(lookupEnv, OnlyMirrorFlag) {
			if path == "" {
				return nil, Usagef("--%s picks [mirror NAME] sections of a config file, and there is no config file (--config or $SSMIRROR_CONFIG)", OnlyMirrorFlag)
			}
			return nil, Usagef("--%s: %s has no [mirror NAME] sections", OnlyMirrorFlag, path)
		}
		return nil, nil
	}
	for _, v := range []string{"SOURCE", "TARGET", "FILTERS"} {
		if x, ok := lookupEnv(EnvPrefix + v); ok && x != "" {
			return nil, Usagef("$%s%s is set, but %s holds [mirror] sections, each with its own source, target and filters: unset it", EnvPrefix, v, path)
		}
	}
	return names, nil
}

// MirrorOf names the [mirror] section of the config file the parsed fs names that lists target
// (as written, or as the same place), for a command given TARGET alone: "" when the file has no
// sections. A file of sections none of which lists it is an error naming them.
func MirrorOf(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), isSetting func(string) bool, target string) (string, error) {
	if isSetting == nil {
		isSetting = func(k string) bool { return k == "source" || k == "target" || fs.Lookup(k) != nil }
	}
	path := ConfigPath(fs, lookupEnv)
	if path == "" {
		return "", nil
	}
	cf, err := loadConfigFile(path, isSetting)
	if err != nil || len(cf.mirrors) == 0 {
		return "", errOrUsage(err)
	}
	want, err := ParseLocation(target)
	if err != nil {
		return "", err
	}
	for _, m := range cf.mirrors {
		var listed []string
		for _, s := range m.settings {
			if s.key == "target" {
				listed = append(listed, s.value)
			}
		}
		for _, p := range m.places {
			if p.kind == "target" {
				listed = append(listed, p.location)
			}
		}
		for _, l := range listed {
			if loc, err := ParseLocation(l); err == nil && SamePlace(loc, want) {
				return m.name, nil
			}
		}
	}
	return "", Usagef("no [mirror] section of %s lists the target %s (its mirrors: %s): name the mirror with --%s NAME", path, target, strings.Join(cf.mirrorNames(), ", "), OnlyMirrorFlag)
}

func errOrUsage(err error) error {
	if err == nil {
		return nil
	}
	return UsageError{err}
}

func envSet(lookupEnv func(string) (string, bool), flag string) bool {
	v, ok := lookupEnv(EnvName(flag))
	return ok && v != ""
}

// PickMirrors returns the mirrors of names (a file's, in its order) that only names, in the
// file's order; all of them when only is empty. A name of only that names no section is an
// error, as is one given twice.
func PickMirrors(path string, names, only []string) ([]string, error) {
	if len(only) == 0 {
		return names, nil
	}
	want := map[string]bool{}
	for _, n := range only {
		if !slices.Contains(names, n) {
			return nil, Usagef("--%s %s: %s", OnlyMirrorFlag, n, unknownMirror(path, n, names))
		}
		if want[n] {
			return nil, Usagef("--%s %s given twice", OnlyMirrorFlag, n)
		}
		want[n] = true
	}
	var out []string
	for _, n := range names {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// RunMirrors calls run for each name, up to parallel at once (at least one), in order, and
// returns each one's error by index. One failing does not stop the others; once ctx is done no
// further mirror starts (its error is ctx's cause).
func RunMirrors(ctx context.Context, names []string, parallel int, run func(ctx context.Context, name string) error) []error {
	errs := make([]error, len(names))
	sem := make(chan struct{}, max(parallel, 1))
	var wg gosync.WaitGroup
	for i, name := range names {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			errs[i] = fmt.Errorf("mirror %s not started: %w", name, context.Cause(ctx))
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = run(ctx, name)
		})
	}
	wg.Wait()
	return errs
}
