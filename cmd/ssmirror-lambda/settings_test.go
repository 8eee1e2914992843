package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
)

// sampleValue is a valid value, other than the default, for a flag of the sync flag set.
func sampleValue(t *testing.T, f *pflag.Flag) string {
	t.Helper()
	switch f.Name {
	case "keyring":
		return repoFile(t, "keys/test-keyring.gpg")
	case "signing-key":
		return repoFile(t, "keys/test-signing-key.asc")
	case "upload-checksum":
		return "md5"
	case "mirror":
		return "https://mirror.example/maas/"
	case "s3-addressing-style":
		return "path"
	case "bwlimit":
		return "64MiB" // above --min-rate times --concurrency
	case "gc-grace":
		return "3h" // into a bucket, at least the metadata's max-age plus --client-cache (2h5m)
	case "metadata-cache-control":
		return "public, max-age=60"
	case "public-url":
		return "https://cdn.example/maas/"
	}
	switch f.Value.Type() {
	case "bool":
		return "true"
	case "int":
		n, err := strconv.Atoi(f.DefValue)
		if err != nil {
			t.Fatalf("--%s: default %q: %v", f.Name, f.DefValue, err)
		}
		return strconv.Itoa(n + 1)
	case "duration":
		return "7m"
	case "size":
		return "7MiB"
	case "string":
		return "sample-" + f.Name
	}
	t.Fatalf("--%s: no sample value for a flag of type %s: add one here", f.Name, f.Value.Type())
	return ""
}

// Every setting of the sync flag set that both binaries share reaches the function, from its
// environment variable and from the config file, with no code of the function's own: a flag
// added to cliconfig.Sync is read here without a change to the handler.
func TestEverySyncSettingReachesTheFunction(t *testing.T) {
	clearSSMirrorEnv(t)
	base := map[string]string{
		"SSMIRROR_SOURCE": "https://images.maas.io/ephemeral-v3/stable/",
		"SSMIRROR_TARGET": "s3://bucket/prefix",
	}
	lookup := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	def, err := readConfig(lookup(base))
	if err != nil {
		t.Fatal(err)
	}

	// The flags the command's sync and the function share.
	var shared cliconfig.Sync
	fs := pflag.NewFlagSet("shared", pflag.ContinueOnError)
	shared.AddFlags(fs)
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		switch f.Name {
		case cliconfig.ConfigFlag:
			return
		case cliconfig.OnlyMirrorFlag:
			return // --only-mirror picks [mirror] sections: TestHandlerRunsMirrorSections
		case cliconfig.TargetFlag:
			return // --target's values come as $SSMIRROR_TARGET and target lines (TestSeveralTargets)
		}
		n++
		value := sampleValue(t, f)
		for _, via := range []string{"environment", "config file"} {
			t.Run(f.Name+"/"+via, func(t *testing.T) {
				env := map[string]string{}
				for k, v := range base {
					env[k] = v
				}
				switch via {
				case "environment":
					env[cliconfig.EnvName(f.Name)] = value
				default:
					file := filepath.Join(t.TempDir(), "ssmirror.conf")
					if err := os.WriteFile(file, []byte(f.Name+" = "+value+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					env["SSMIRROR_CONFIG"] = file
				}
				c, err := readConfig(lookup(env))
				if err != nil {
					t.Fatalf("%s=%s: %v", f.Name, value, err)
				}
				got := c.fs.Lookup(f.Name)
				if got == nil || !got.Changed {
					t.Fatalf("the function's flag set has no --%s set from the %s", f.Name, via)
				}
				// What the run uses (the sync options, the stores, the CDN: all built from
				// c.flags by shared code) differs from the defaults.
				if reflect.DeepEqual(c.flags, def.flags) {
					t.Errorf("%s=%s from the %s left the function's settings at their defaults", f.Name, value, via)
				}
			})
		}
	})
	if n < 30 {
		t.Errorf("only %d shared sync flags: is the flag set built?", n)
	}
}

// The command's typo warnings and the function's come from one implementation: a misspelt
// setting is named with what was meant.
func TestUnknownEnvWarned(t *testing.T) {
	got := cliconfig.UnknownEnv([]string{"SSMIRROR_MAXX=2", "SSMIRROR_MAX=1", "SSMIRROR_KEYRING_DAT=x", "SSMIRROR_ZZZZZZZZZZ=1", "HOME=/root"}, knownEnv)
	want := []cliconfig.UnknownVar{{Name: "SSMIRROR_MAXX", Near: "SSMIRROR_MAX"}, {Name: "SSMIRROR_KEYRING_DAT", Near: "SSMIRROR_KEYRING_DATA"}, {Name: "SSMIRROR_ZZZZZZZZZZ"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unknown variables = %+v, want %+v", got, want)
	}
}

// TestSeveralTargets: several targets reach the function as they reach the command: from
// $SSMIRROR_TARGET separated by commas or blanks, or from several target lines in the file.
func TestSeveralTargets(t *testing.T) {
	clearSSMirrorEnv(t)
	want := []string{"s3://a/p", "s3://b/p", "s3://c/p"}
	file := filepath.Join(t.TempDir(), "ssmirror.conf")
	if err := os.WriteFile(file, []byte("target = s3://a/p\ntarget = s3://b/p\ntarget = s3://c/p\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string]map[string]string{
		"environment": {"SSMIRROR_TARGET": "s3://a/p, s3://b/p\ts3://c/p"},
		"config file": {"SSMIRROR_CONFIG": file},
	} {
		t.Run(name, func(t *testing.T) {
			env["SSMIRROR_SOURCE"] = "https://images.maas.io/ephemeral-v3/stable/"
			c, err := readConfig(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			if got := c.job.Names(); !reflect.DeepEqual(got, want) {
				t.Errorf("targets %q, want %q", got, want)
			}
		})
	}
}

// TestEventKeys: an invocation's event carries the keys of Event and, from a schedule,
// EventBridge's own (ignored); any other key is refused with the key it probably misspells, so
// that {"dry-run": true} does not run a real sync.
func TestEventKeys(t *testing.T) {
	for _, raw := range []string{"", "null", "{}", scheduledEvent, `{"dry_run": true, "filters": ["arch=amd64"], "mirrors": ["a"]}`} {
		if _, err := decodeEvent(json.RawMessage(raw)); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
	ev, err := decodeEvent(json.RawMessage(`{"dry_run": true, "filters": ["arch=amd64"]}`))
	if err != nil || !ev.DryRun || len(ev.Filters) != 1 {
		t.Errorf("decoded %+v, %v", ev, err)
	}
	for raw, want := range map[string]string{
		`{"dry-run": true}`:      `event key "dry-run" is not a setting of an invocation (filters, dry_run, mirrors); did you mean dry_run?`,
		`{"filter": ["arch=x"]}`: "did you mean filters?",
		`{"publish": false}`:     `event key "publish" is not a setting`,
		`{"dry_run": "yes"}`:     "event: ",
	} {
		if _, err := decodeEvent(json.RawMessage(raw)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
}
