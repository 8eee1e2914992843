// Package cliconfig is the configuration both binaries share: the sync flag set, the layering
// of the command line over the environment over a config file, filter groups, SOURCE and
// TARGET locations opened as stores, and the JSON summary of a run. The ssmirror command and
// the ssmirror-lambda function read their settings through it, so a setting added here reaches
// both.
package cliconfig

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/spf13/pflag"
	"github.com/ssmirror/ssmirror/streams"
)

// Configuration outside the command line.
//
// Every flag of a command can also be set from the environment, as SSMIRROR_ followed by the
// flag's long name in upper case with - turned into _ (--s3-endpoint: SSMIRROR_S3_ENDPOINT), and
// from a config file (--config FILE, or $SSMIRROR_CONFIG). A flag given on the command line wins
// over the environment, which wins over the file, which wins over the flag's default. An empty
// environment variable counts as unset. A file may also hold several mirrors, as [mirror NAME]
// sections (see mirrors.go).
//
// The file is made of "key = value" lines; keys are flag long names (- or _ alike). Lines whose
// first non-blank character is # are comments; there are no trailing comments (a # inside a
// value is part of it). A repeatable flag (--mirror) may be given on several lines. Besides the
// flags, the keys source and target give SOURCE and TARGET, and each [filter] section holds one
// filter group: one filter per line, written as on the command line, all of which must hold.
// An item is selected when any group selects it.
//
//	# /etc/ssmirror/maas.conf
//	source = https://images.maas.io/ephemeral-v3/stable/
//	target = s3://maas-images/ephemeral-v3/stable
//	keyring = /usr/share/keyrings/ubuntu-cloudimage-keyring.gpg
//	max = 1
//
//	[filter]
//	arch=amd64
//	release~^(jammy|noble)$
//
// From the environment, $SSMIRROR_SOURCE, $SSMIRROR_TARGET and $SSMIRROR_FILTERS (filters
// separated by blanks, groups by ;) do the same. Several targets (a fan-out run) are several
// target lines in the file, or $SSMIRROR_TARGET holding them separated by commas or blanks; on
// the command line, --target adds to the positional TARGET. A repeatable flag's environment variable holds
// its values separated by blanks.
//
// Secrets are never read from the file: the signing key's passphrase comes from
// $SSMIRROR_SIGNING_PASSPHRASE or --signing-passphrase-file, AWS credentials from the SDK's chain.

// EnvPrefix starts every environment variable ssmirror reads for its settings.
const EnvPrefix = "SSMIRROR_"

// ConfigFlag is the flag naming the config file.
const ConfigFlag = "config"

// TargetFlag is the repeatable flag adding targets to the positional TARGET. It is set on the
// command line only: $SSMIRROR_TARGET and the file's target lines are Settings.Targets.
const TargetFlag = "target"

// EnvName is the environment variable that sets a flag: SSMIRROR_S3_ENDPOINT for s3-endpoint.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// UsageError marks an error in how the command was called or configured (ssmirror exits 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef is fmt.Errorf marked as a UsageError.
func Usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// AddConfigFlag adds --config to fs.
func AddConfigFlag(fs *pflag.FlagSet) {
	fs.String(ConfigFlag, "", "read settings from this file (default: $SSMIRROR_CONFIG); flags and $SSMIRROR_* variables win over it")
}

// fileSetting is one "key = value" line of a config file.
type fileSetting struct {
	key, value string
	line       int
}

// configFile is a parsed config file.
type configFile struct {
	path     string
	settings []fileSetting
	// groups are the [filter] sections, in order.
	groups []streams.Filters
	// places are the [target] and [source] sections, in order.
	places []*placeSection
	// mirrors are the [mirror NAME] sections, in order (none: the file is one mirror).
	mirrors []*mirrorSection
}

// mirrorSection is one [mirror NAME] section: its own settings, [filter] groups and [target]
// and [source] sections.
type mirrorSection struct {
	name     string
	line     int
	settings []fileSetting
	groups   []streams.Filters
	places   []*placeSection
}

// placeSection is a [target] or [source] section: one location (its target or source key)
// with its own storage settings, under the keys of the global ones (storageKeys).
type placeSection struct {
	kind     string // "target" or "source"
	line     int
	location string
	storage  Storage
}

// storageKeys are the settings a [target] or [source] section may give its location: the
// global settings' own keys.
var storageKeys = []string{"s3-endpoint", "region", "profile", "s3-ca-bundle", "s3-addressing-style"}

// set reads one line of the section.
func (p *placeSection) set(path string, s fileSetting) error {
	at := fmt.Sprintf("%s:%d", path, s.line)
	seen := func(cur string) error {
		if cur != "" {
			return fmt.Errorf("%s: %s set twice in the [%s] section of line %d", at, s.key, p.kind, p.line)
		}
		return nil
	}
	var err error
	switch s.key {
	case p.kind:
		if err = seen(p.location); err == nil {
			p.location = s.value
		}
	case "s3-endpoint":
		if err = seen(p.storage.Endpoint); err == nil {
			if cerr := checkEndpoint(s.value); cerr != nil {
				return fmt.Errorf("%s: s3-endpoint %s: %v", at, s.value, cerr)
			}
			p.storage.Endpoint = s.value
		}
	case "region":
		if err = seen(p.storage.Region); err == nil {
			p.storage.Region = s.value
		}
	case "profile":
		if err = seen(p.storage.Profile); err == nil {
			p.storage.Profile = s.value
		}
	case "s3-ca-bundle":
		if err = seen(p.storage.CABundle); err == nil {
			p.storage.CABundle = s.value
		}
	case "s3-addressing-style":
		if err = seen(p.storage.Addressing); err == nil {
			a, cerr := checkAddressing(s.value)
			if cerr != nil {
				return fmt.Errorf("%s: s3-addressing-style %v", at, cerr)
			}
			p.storage.Addressing = a
		}
	default:
		return fmt.Errorf("%s: %s is not a setting of one %s: a [%s] section holds %s = LOCATION and its storage settings (%s); other settings go at the top of the file or in a [mirror] section", at, s.key, p.kind, p.kind, p.kind, strings.Join(storageKeys, ", "))
	}
	return err
}

// check refuses a section without its location, or with storage settings for a location that
// has no storage to reach.
func (p *placeSection) check(path string) error {
	if p.location == "" {
		return fmt.Errorf("%s:%d: [%s] has no %s = LOCATION", path, p.line, p.kind, p.kind)
	}
	if !strings.HasPrefix(p.location, "s3://") && !p.storage.IsZero() {
		return fmt.Errorf("%s:%d: [%s] %s: storage settings (%s) are for s3:// locations", path, p.line, p.kind, p.location, strings.Join(storageKeys, ", "))
	}
	return nil
}

// parseConfigFile parses a config file's text; path names it in errors. isSetting tells a
// setting's key (mistakenly written inside a [filter] section) from a filter's.
func parseConfigFile(path string, data []byte, isSetting func(string) bool) (*configFile, error) {
	cf := &configFile{path: path}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	inFilter, sectionLine := false, 0
	var place *placeSection // the [target] or [source] section the lines go to
	// Where settings, [filter] groups and [target]/[source] sections go: the top of the file,
	// or the current [mirror].
	settings, groups, places := &cf.settings, &cf.groups, &cf.places
	firstTopFilter := 0
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			if name, ok := mirrorHeader(line); ok {
				m, err := cf.addMirror(name, n)
				if err != nil {
					return nil, err
				}
				inFilter, place = false, nil
				settings, groups, places = &m.settings, &m.groups, &m.places
				continue
			}
			if line == "[target]" || line == "[source]" {
				place = &placeSection{kind: strings.Trim(line, "[]"), line: n}
				*places = append(*places, place)
				inFilter = false
				continue
			}
			if line != "[filter]" {
				return nil, fmt.Errorf("%s:%d: unknown section %s (the sections are [filter], [target], [source] and [mirror NAME])", path, n, line)
			}
			place = nil
			if len(cf.mirrors) == 0 && firstTopFilter == 0 {
				firstTopFilter = n
			}
			inFilter, sectionLine = true, n
			*groups = append(*groups, nil)
			continue
		}
		if inFilter {
			if err := settingInFilter(line, sectionLine, isSetting); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			f, err := ParseFilterLine(line)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			g := &(*groups)[len(*groups)-1]
			*g = append(*g, f)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want key = value", path, n)
		}
		k = strings.ReplaceAll(strings.TrimSpace(k), "_", "-")
		if isSecretKey(k) {
			return nil, fmt.Errorf("%s:%d: %s: secrets are not read from the config file (the signing passphrase comes from $SSMIRROR_SIGNING_PASSPHRASE or --signing-passphrase-file; AWS credentials from the SDK's usual chain)", path, n, k)
		}
		fset := fileSetting{key: k, value: strings.TrimSpace(v), line: n}
		if place != nil {
			if err := place.set(path, fset); err != nil {
				return nil, err
			}
			continue
		}
		*settings = append(*settings, fset)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, g := range cf.groups {
		if len(g) == 0 {
			return nil, fmt.Errorf("%s: [filter] section %d is empty (it would select everything)", path, i+1)
		}
	}
	for _, p := range cf.allPlaces() {
		if err := p.check(path); err != nil {
			return nil, err
		}
	}
	if err := cf.checkMirrors(firstTopFilter); err != nil {
		return nil, err
	}
	return cf, nil
}

// allPlaces are the file's [target] and [source] sections, the top's and every mirror's.
func (cf *configFile) allPlaces() []*placeSection {
	out := slices.Clone(cf.places)
	for _, m := range cf.mirrors {
		out = append(out, m.places...)
	}
	return out
}

// isSecretKey reports whether a config key names a secret rather than where one is kept.
func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	if strings.HasSuffix(k, "-file") || k == "signing-key" {
		return false
	}
	for _, s := range []string{"passphrase", "password", "secret", "token"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// loadConfigFile reads and parses a config file.
func loadConfigFile(path string, isSetting func(string) bool) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return parseConfigFile(path, data, isSetting)
}

// Settings are what a command takes from outside its flags: the positional arguments.
type Settings struct {
	// Source and Target come from $SSMIRROR_SOURCE/$SSMIRROR_TARGET, else the file ("": unset).
	// Target is the first of Targets.
	Source, Target string
	// Targets are every target: $SSMIRROR_TARGET split at commas and blanks, else the file's
	// target lines, in order (nil: unset).
	Targets []string
	// Groups are the filter groups from $SSMIRROR_FILTERS, else the file's [filter] sections
	// (nil: unset).
	Groups []streams.Filters
	// Storage are the storage settings the file's [target] and [source] sections give their
	// locations, by location as written (in Source and Targets).
	Storage map[string]Storage
}

// Configure fills every flag of the parsed fs that the command line did not set: from the
// environment (looked up with lookupEnv), else from the config file named by --config or
// $SSMIRROR_CONFIG, else the flag keeps its default. It returns the positional settings found
// the same way. A file key that is neither a flag of fs nor source/target is an error.
// isSetting reports whether a key is a setting of any command (a [filter] line that is one is
// explained); nil counts the flags of fs. From names the origin of each setting afterwards.
func Configure(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), isSetting func(string) bool) (*Settings, error) {
	return ConfigureMirror(fs, lookupEnv, isSetting, "")
}

// ConfigureMirror is Configure for the [mirror NAME] section mirror of the config file: the
// file as that mirror sees it is the top's settings with the section's replacing them, and
// the section's [filter] groups (see Mirrors). Mirror "" is the file as a whole, refused when
// it has [mirror] sections.
func ConfigureMirror(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), isSetting func(string) bool, mirror string) (*Settings, error) {
	return configure(fs, lookupEnv, isSetting, mirror, false)
}

// ConfigureShared is ConfigureMirror for a command that reads the file sync reads but has fewer
// settings (status, verify, gc): a key of the file that is a setting of another command
// (isSetting) but no flag of fs is left to that command instead of refused.
func ConfigureShared(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), isSetting func(string) bool, mirror string) (*Settings, error) {
	return configure(fs, lookupEnv, isSetting, mirror, true)
}

func configure(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), isSetting func(string) bool, mirror string, shared bool) (*Settings, error) {
	if isSetting == nil {
		isSetting = func(k string) bool { return k == "source" || k == "target" || fs.Lookup(k) != nil }
	}
	env := func(name string) (string, bool) {
		v, ok := lookupEnv(name)
		return v, ok && v != ""
	}
	cf, err := loadForMirror(fs, env, isSetting, mirror)
	if err != nil {
		return nil, err
	}
	fromFile, err := cf.byKey(fs, isSetting, shared)
	if err != nil {
		return nil, err
	}
	if err := setFlags(fs, env, cf.path, fromFile); err != nil {
		return nil, err
	}
	return cf.positional(env, fromFile)
}

// loadForMirror loads the config file fs names (--config, else $SSMIRROR_CONFIG) as mirror sees
// it (forMirror); no file is an empty one.
func loadForMirror(fs *pflag.FlagSet, env func(string) (string, bool), isSetting func(string) bool, mirror string) (*configFile, error) {
	path := ""
	if f := fs.Lookup(ConfigFlag); f != nil {
		path = f.Value.String()
		if !f.Changed {
			path, _ = env(EnvName(ConfigFlag))
		}
	}
	if path == "" {
		if mirror != "" {
			return nil, Usagef("mirror %s: no config file", mirror)
		}
		return &configFile{}, nil
	}
	cf, err := loadConfigFile(path, isSetting)
	if err != nil {
		return nil, UsageError{err}
	}
	if cf, err = cf.forMirror(mirror); err != nil {
		return nil, UsageError{err}
	}
	return cf, nil
}

// byKey are the file's settings by key, checked against fs: a key that is no flag of fs is
// refused, unless shared and a setting of another command (isSetting), then left out.
func (cf *configFile) byKey(fs *pflag.FlagSet, isSetting func(string) bool, shared bool) (map[string][]fileSetting, error) {
	fromFile := map[string][]fileSetting{}
	for _, s := range cf.settings {
		switch s.key {
		case "source", "target":
			if len(fromFile[s.key]) > 0 && s.key == "source" {
				return nil, Usagef("%s:%d: %s set twice (first on line %d)", cf.path, s.line, s.key, fromFile[s.key][0].line)
			}
			fromFile[s.key] = append(fromFile[s.key], s)
			continue
		case ConfigFlag, "help":
			return nil, Usagef("%s:%d: %s cannot be set in the config file", cf.path, s.line, s.key)
		}
		f := fs.Lookup(s.key)
		if f == nil && shared && isSetting(s.key) {
			continue // another command's setting
		}
		if f == nil {
			return nil, Usagef("%s:%d: unknown setting %q (not a flag of ssmirror %s)", cf.path, s.line, s.key, fs.Name())
		}
		if prev := fromFile[s.key]; len(prev) > 0 && !IsRepeatable(f) {
			return nil, Usagef("%s:%d: %s set twice (first on line %d)", cf.path, s.line, s.key, prev[0].line)
		}
		fromFile[s.key] = append(fromFile[s.key], s)
	}
	return fromFile, nil
}

// setFlags sets every flag of fs the command line did not: from its environment variable, else
// from the file's lines (path names it in errors).
func setFlags(fs *pflag.FlagSet, env func(string) (string, bool), path string, fromFile map[string][]fileSetting) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == ConfigFlag || f.Name == TargetFlag || f.Name == "help" {
			return
		}
		if v, ok := env(EnvName(f.Name)); ok {
			vals := []string{v}
			if IsRepeatable(f) {
				vals = strings.Fields(v)
			}
			for _, v := range vals {
				if serr := fs.Set(f.Name, v); serr != nil {
					err = Usagef("$%s: %v", EnvName(f.Name), serr)
					return
				}
			}
			setOrigin(fs, f.Name, "$"+EnvName(f.Name))
			return
		}
		for _, s := range fromFile[f.Name] {
			if serr := fs.Set(f.Name, s.value); serr != nil {
				err = Usagef("%s:%d: %s: %v", path, s.line, f.Name, serr)
				return
			}
			setOrigin(fs, f.Name, fmt.Sprintf("%s:%d", path, s.line))
		}
	})
	return err
}

// positional are the settings besides the flags: source, targets (with their sections'
// storage settings) and filter groups, from the environment, else the file.
func (cf *configFile) positional(env func(string) (string, bool), fromFile map[string][]fileSetting) (*Settings, error) {
	out := &Settings{}
	// [source] and [target] sections, in the file's order among the source and target lines.
	for _, p := range cf.places {
		if p.kind == "source" && len(fromFile["source"]) > 0 {
			return nil, Usagef("%s:%d: a [source] section and a source line (line %d): the file names one source", cf.path, p.line, fromFile["source"][0].line)
		}
		if !p.storage.IsZero() {
			if out.Storage == nil {
				out.Storage = map[string]Storage{}
			}
			out.Storage[p.location] = p.storage
		}
		fromFile[p.kind] = append(fromFile[p.kind], fileSetting{key: p.kind, value: p.location, line: p.line})
	}
	slices.SortStableFunc(fromFile["target"], func(a, b fileSetting) int { return a.line - b.line })
	if v, ok := env(EnvPrefix + "SOURCE"); ok {
		out.Source = v
	} else if s := fromFile["source"]; len(s) > 0 {
		out.Source = s[0].value
	}
	if v, ok := env(EnvPrefix + "TARGET"); ok {
		out.Targets = SplitTargets(v)
	} else {
		for _, s := range fromFile["target"] {
			out.Targets = append(out.Targets, s.value)
		}
	}
	if len(out.Targets) > 0 {
		out.Target = out.Targets[0]
	}
	if v, ok := env(EnvPrefix + "FILTERS"); ok {
		groups, perr := ParseGroups(v)
		if perr != nil {
			return nil, Usagef("$%sFILTERS: %v", EnvPrefix, perr)
		}
		out.Groups = groups
	} else {
		out.Groups = cf.groups
	}
	return out, nil
}

// SplitTargets splits $SSMIRROR_TARGET's value into targets, at commas and blanks (a location
// holds neither: an S3 bucket name and a key prefix have no blank, and a directory's path with
// one is written in a config file instead).
func SplitTargets(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// originKey is the annotation of a flag set from the environment or the file: where from.
const originKey = "cliconfig.origin"

func setOrigin(fs *pflag.FlagSet, name, origin string) {
	fs.SetAnnotation(name, originKey, []string{origin})
}

// From is the prefix of a message about flag name that says where its setting came from when
// it was not the command line: "$SSMIRROR_MAX: ", "FILE:LINE: ", or "".
func From(fs *pflag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil {
		if o := f.Annotations[originKey]; len(o) == 1 {
			return o[0] + ": "
		}
	}
	return ""
}

// IsRepeatable reports whether each Set of f adds a value rather than replacing it.
func IsRepeatable(f *pflag.Flag) bool {
	switch f.Value.Type() {
	case "stringArray", "stringSlice":
		return true
	}
	return false
}
