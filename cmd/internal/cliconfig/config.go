package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/ssmirror/ssmirror/streams"
)

// Configuration outside the command line.
//
// Every flag of a command can also be set from the environment, as SSMIRROR_ followed by the
// flag's long name in upper case with - turned into _ (--s3-endpoint: SSMIRROR_S3_ENDPOINT), and
// from a config file (--config FILE, or $SSMIRROR_CONFIG). A flag given on the command line wins
// over the environment, which wins over the file, which wins over the flag's default. An empty
// environment variable counts as unset.
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
// separated by blanks, groups by ;) do the same. A repeatable flag's environment variable holds
// its values separated by blanks.
//
// Secrets are never read from the file: the signing key's passphrase comes from
// $SSMIRROR_SIGNING_PASSPHRASE or --signing-passphrase-file, AWS credentials from the SDK's chain.

// envPrefix starts every environment variable ssmirror reads for its settings.
const envPrefix = "SSMIRROR_"

// configFlag is the flag naming the config file.
const configFlag = "config"

// envName is the environment variable that sets a flag: SSMIRROR_S3_ENDPOINT for s3-endpoint.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// addConfigFlag adds --config to fs.
func addConfigFlag(fs *pflag.FlagSet) {
	fs.String(configFlag, "", "read settings from this file (default: $SSMIRROR_CONFIG); flags and $SSMIRROR_* variables win over it")
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
}

// parseConfigFile parses a config file's text; path names it in errors.
func parseConfigFile(path string, data []byte) (*configFile, error) {
	cf := &configFile{path: path}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	inFilter, sectionLine := false, 0
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			if line != "[filter]" {
				return nil, fmt.Errorf("%s:%d: unknown section %s (the only section is [filter])", path, n, line)
			}
			inFilter, sectionLine = true, n
			cf.groups = append(cf.groups, nil)
			continue
		}
		if inFilter {
			if err := settingInFilter(line, sectionLine); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			f, err := parseFilterLine(line)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			g := &cf.groups[len(cf.groups)-1]
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
		cf.settings = append(cf.settings, fileSetting{key: k, value: strings.TrimSpace(v), line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, g := range cf.groups {
		if len(g) == 0 {
			return nil, fmt.Errorf("%s: [filter] section %d is empty (it would select everything)", path, i+1)
		}
	}
	return cf, nil
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
func loadConfigFile(path string) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return parseConfigFile(path, data)
}

// settings are what a command takes from outside its flags: the positional arguments.
type settings struct {
	// Source and Target come from $SSMIRROR_SOURCE/$SSMIRROR_TARGET, else the file ("": unset).
	Source, Target string
	// Groups are the filter groups from $SSMIRROR_FILTERS, else the file's [filter] sections
	// (nil: unset).
	Groups []streams.Filters
}

// configure fills every flag of the parsed fs that the command line did not set: from the
// environment (looked up with lookupEnv), else from the config file named by --config or
// $SSMIRROR_CONFIG, else the flag keeps its default. It returns the positional settings found
// the same way. A file key that is neither a flag of fs nor source/target is an error.
func configure(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) (*settings, error) {
	env := func(name string) (string, bool) {
		v, ok := lookupEnv(name)
		return v, ok && v != ""
	}
	var cf *configFile
	path := ""
	if f := fs.Lookup(configFlag); f != nil {
		path = f.Value.String()
		if !f.Changed {
			path, _ = env(envName(configFlag))
		}
	}
	if path != "" {
		var err error
		if cf, err = loadConfigFile(path); err != nil {
			return nil, usageError{err}
		}
	} else {
		cf = &configFile{}
	}

	// The file's settings by key, checked against fs.
	fromFile := map[string][]fileSetting{}
	out := &settings{}
	for _, s := range cf.settings {
		switch s.key {
		case "source", "target":
			if len(fromFile[s.key]) > 0 {
				return nil, usagef("%s:%d: %s set twice (first on line %d)", cf.path, s.line, s.key, fromFile[s.key][0].line)
			}
			fromFile[s.key] = append(fromFile[s.key], s)
			continue
		case configFlag, "help":
			return nil, usagef("%s:%d: %s cannot be set in the config file", cf.path, s.line, s.key)
		}
		f := fs.Lookup(s.key)
		if f == nil {
			return nil, usagef("%s:%d: unknown setting %q (not a flag of ssmirror %s)", cf.path, s.line, s.key, fs.Name())
		}
		if prev := fromFile[s.key]; len(prev) > 0 && !isRepeatable(f) {
			return nil, usagef("%s:%d: %s set twice (first on line %d)", cf.path, s.line, s.key, prev[0].line)
		}
		fromFile[s.key] = append(fromFile[s.key], s)
	}

	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == configFlag || f.Name == "help" {
			return
		}
		if v, ok := env(envName(f.Name)); ok {
			vals := []string{v}
			if isRepeatable(f) {
				vals = strings.Fields(v)
			}
			for _, v := range vals {
				if serr := fs.Set(f.Name, v); serr != nil {
					err = usagef("$%s: %v", envName(f.Name), serr)
					return
				}
			}
			return
		}
		for _, s := range fromFile[f.Name] {
			if serr := fs.Set(f.Name, s.value); serr != nil {
				err = usagef("%s:%d: %s: %v", cf.path, s.line, f.Name, serr)
				return
			}
		}
	})
	if err != nil {
		return nil, err
	}

	if v, ok := env(envPrefix + "SOURCE"); ok {
		out.Source = v
	} else if s := fromFile["source"]; len(s) > 0 {
		out.Source = s[0].value
	}
	if v, ok := env(envPrefix + "TARGET"); ok {
		out.Target = v
	} else if s := fromFile["target"]; len(s) > 0 {
		out.Target = s[0].value
	}
	if v, ok := env(envPrefix + "FILTERS"); ok {
		for _, g := range strings.Split(v, ";") {
			fl, perr := parseFilterArgs(strings.Fields(g))
			if perr != nil {
				return nil, usagef("$%sFILTERS: %v", envPrefix, perr)
			}
			if len(fl) == 0 {
				return nil, usagef("$%sFILTERS: an empty filter group would select everything", envPrefix)
			}
			out.Groups = append(out.Groups, fl)
		}
	} else {
		out.Groups = cf.groups
	}
	return out, nil
}

// isRepeatable reports whether each Set of f adds a value rather than replacing it.
func isRepeatable(f *pflag.Flag) bool {
	switch f.Value.Type() {
	case "stringArray", "stringSlice":
		return true
	}
	return false
}
