package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/streams"
	"go.yaml.in/yaml/v3"
)

// testFlags is a flag set with one flag of each kind the commands use.
type testFlags struct {
	max      int
	keyring  string
	prune    bool
	grace    time.Duration
	mirrors  []string
	verbose  int
	endpoint string
}

func newTestFlags(f *testFlags) *pflag.FlagSet {
	fs := pflag.NewFlagSet("sync", pflag.ContinueOnError)
	fs.IntVar(&f.max, "max", 0, "")
	fs.StringVar(&f.keyring, "keyring", "", "")
	fs.BoolVar(&f.prune, "prune", false, "")
	fs.DurationVar(&f.grace, "gc-grace", 24*time.Hour, "")
	fs.StringArrayVar(&f.mirrors, "mirror", nil, "")
	fs.CountVarP(&f.verbose, "verbose", "v", "")
	fs.StringVar(&f.endpoint, "s3-endpoint", "", "")
	cliconfig.AddConfigFlag(fs)
	return fs
}

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"max": "SSMIRROR_MAX", "s3-endpoint": "SSMIRROR_S3_ENDPOINT",
		"signing-passphrase-file": "SSMIRROR_SIGNING_PASSPHRASE_FILE", "config": "SSMIRROR_CONFIG",
	} {
		if got := cliconfig.EnvName(flag); got != want {
			t.Errorf("cliconfig.EnvName(%q) = %q, want %q", flag, got, want)
		}
	}
}

func TestConfigurePrecedence(t *testing.T) {
	const file = `# a comment
max = 3
keyring = /file/keyring.gpg
gc_grace = 1h
mirror = http://file-a.example/
mirror = http://file-b.example/
  # an indented comment
s3-endpoint = http://minio:9000/#not-a-comment
source = /file/source
target = /file/target

[filter]
arch=amd64
release~^(jammy|noble)$

[filter]
os~(grub*|pxelinux)
`
	fileGroups := []streams.Filters{
		{{Key: "arch", Op: "=", Value: "amd64"}, {Key: "release", Op: "~", Value: "^(jammy|noble)$"}},
		{{Key: "os", Op: "~", Value: "(grub*|pxelinux)"}},
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "ssmirror.conf")
	if err := os.WriteFile(cfgPath, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	defaults := testFlags{grace: 24 * time.Hour}
	fromFile := testFlags{max: 3, keyring: "/file/keyring.gpg", grace: time.Hour,
		mirrors: []string{"http://file-a.example/", "http://file-b.example/"}, endpoint: "http://minio:9000/#not-a-comment"}

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		want     testFlags
		wantConf settings
	}{
		{name: "defaults", want: defaults},
		{name: "file via --config", args: []string{"--config", cfgPath}, want: fromFile,
			wantConf: settings{Source: "/file/source", Target: "/file/target", Targets: []string{"/file/target"}, Groups: fileGroups}},
		{name: "file via $SSMIRROR_CONFIG", env: map[string]string{"SSMIRROR_CONFIG": cfgPath}, want: fromFile,
			wantConf: settings{Source: "/file/source", Target: "/file/target", Targets: []string{"/file/target"}, Groups: fileGroups}},
		{name: "--config over $SSMIRROR_CONFIG", args: []string{"--config", cfgPath},
			env: map[string]string{"SSMIRROR_CONFIG": filepath.Join(dir, "missing")}, want: fromFile,
			wantConf: settings{Source: "/file/source", Target: "/file/target", Targets: []string{"/file/target"}, Groups: fileGroups}},
		{name: "environment without file",
			env: map[string]string{"SSMIRROR_MAX": "2", "SSMIRROR_PRUNE": "true", "SSMIRROR_VERBOSE": "2",
				"SSMIRROR_MIRROR": "http://e1.example/ http://e2.example/", "SSMIRROR_SOURCE": "/env/src",
				"SSMIRROR_FILTERS": "arch=arm64 release=noble; os=pxelinux"},
			want: testFlags{max: 2, prune: true, verbose: 2, grace: 24 * time.Hour, mirrors: []string{"http://e1.example/", "http://e2.example/"}},
			wantConf: settings{Source: "/env/src", Groups: []streams.Filters{
				{{Key: "arch", Op: "=", Value: "arm64"}, {Key: "release", Op: "=", Value: "noble"}},
				{{Key: "os", Op: "=", Value: "pxelinux"}},
			}}},
		{name: "environment over file", args: []string{"--config", cfgPath},
			env: map[string]string{"SSMIRROR_MAX": "5", "SSMIRROR_GC_GRACE": "2h", "SSMIRROR_MIRROR": "http://env.example/",
				"SSMIRROR_TARGET": "s3://env/target", "SSMIRROR_FILTERS": "arch=s390x"},
			want: testFlags{max: 5, keyring: "/file/keyring.gpg", grace: 2 * time.Hour,
				mirrors: []string{"http://env.example/"}, endpoint: "http://minio:9000/#not-a-comment"},
			wantConf: settings{Source: "/file/source", Target: "s3://env/target", Targets: []string{"s3://env/target"},
				Groups: []streams.Filters{{{Key: "arch", Op: "=", Value: "s390x"}}}}},
		{name: "empty environment variable is unset", args: []string{"--config", cfgPath},
			env: map[string]string{"SSMIRROR_MAX": "", "SSMIRROR_SOURCE": "", "SSMIRROR_FILTERS": ""}, want: fromFile,
			wantConf: settings{Source: "/file/source", Target: "/file/target", Targets: []string{"/file/target"}, Groups: fileGroups}},
		{name: "flags over environment over file",
			args: []string{"--config", cfgPath, "--max=7", "--mirror", "http://flag.example/", "-vvv", "--keyring", "/flag/kr"},
			env:  map[string]string{"SSMIRROR_MAX": "5", "SSMIRROR_KEYRING": "/env/kr", "SSMIRROR_MIRROR": "http://env.example/", "SSMIRROR_VERBOSE": "1", "SSMIRROR_S3_ENDPOINT": "http://env:9000"},
			want: testFlags{max: 7, keyring: "/flag/kr", grace: time.Hour, verbose: 3,
				mirrors: []string{"http://flag.example/"}, endpoint: "http://env:9000"},
			wantConf: settings{Source: "/file/source", Target: "/file/target", Targets: []string{"/file/target"}, Groups: fileGroups}},
		{name: "flag set to its default still wins", args: []string{"--config", cfgPath, "--max=0", "--gc-grace=24h"},
			env:      map[string]string{"SSMIRROR_MAX": "5"},
			want:     testFlags{max: 0, keyring: "/file/keyring.gpg", grace: 24 * time.Hour, mirrors: fromFile.mirrors, endpoint: fromFile.endpoint},
			wantConf: settings{Source: "/file/source", Target: "/file/target", Targets: []string{"/file/target"}, Groups: fileGroups}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got testFlags
			fs := newTestFlags(&got)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			conf, err := configure(fs, mapEnv(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(testFlags{})); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantConf, *conf); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigureErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		file    string // written to a config file when not ""
		env     map[string]string
		wantErr string
		secret  string // must not appear in the error
	}{
		{name: "unknown key", file: "max = 1\nmaxx = 2\n", wantErr: `:2: unknown setting "maxx" (not a flag of ssmirror sync)`},
		{name: "bad value names file, line and key", file: "\n\nmax = many\n", wantErr: `:3: max: invalid argument "many"`},
		{name: "set twice", file: "max = 1\nmax = 2\n", wantErr: ":2: max set twice (first on line 1)"},
		{name: "source twice", file: "source = a\nsource = b\n", wantErr: ":2: source set twice"},
		{name: "no equals", file: "max 1\n", wantErr: ":1: want key = value"},
		{name: "unknown section", file: "[filters]\narch=amd64\n", wantErr: ":1: unknown section [filters]"},
		{name: "bad filter", file: "[filter]\nrelease~(jammy\n", wantErr: ":2: filter"},
		{name: "empty group", file: "[filter]\n[filter]\narch=amd64\n", wantErr: "[filter] section 1 is empty"},
		{name: "config key in file", file: "config = other\n", wantErr: ":1: config cannot be set"},
		{name: "passphrase in file", file: "signing-passphrase = hunter2-swordfish\n", wantErr: ":1: signing-passphrase: secrets are not read from the config file", secret: "hunter2-swordfish"},
		{name: "aws secret in file", file: "aws_secret_access_key = AKIAsecretvalue\n", wantErr: "secrets are not read", secret: "AKIAsecretvalue"},
		{name: "bad environment value", env: map[string]string{"SSMIRROR_GC_GRACE": "soon"}, wantErr: `$SSMIRROR_GC_GRACE: invalid argument "soon"`},
		{name: "bad environment filters", env: map[string]string{"SSMIRROR_FILTERS": "arch=amd64;;os=x"}, wantErr: "$SSMIRROR_FILTERS: an empty filter group"},
		{name: "missing config file", env: map[string]string{"SSMIRROR_CONFIG": filepath.Join(dir, "nope.conf")}, wantErr: "config file: open " + filepath.Join(dir, "nope.conf")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = v
			}
			if tt.file != "" {
				p := filepath.Join(dir, "c"+string(rune('a'+i))+".conf")
				if err := os.WriteFile(p, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
				env["SSMIRROR_CONFIG"] = p
			}
			var f testFlags
			fs := newTestFlags(&f)
			if err := fs.Parse(nil); err != nil {
				t.Fatal(err)
			}
			_, err := configure(fs, mapEnv(env))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("error %v is not a usage error (exit 2)", err)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error %q repeats the secret", err)
			}
		})
	}
}

func TestSyncArgs(t *testing.T) {
	conf := &settings{Source: "/c/src", Target: "/c/dst", Groups: []streams.Filters{{{Key: "os", Op: "=", Value: "x"}}}}
	tests := []struct {
		name          string
		pos           []string
		conf          settings
		src, dst      string
		groups        []streams.Filters
		wantUsageText string
	}{
		{name: "all from configuration", conf: *conf, src: "/c/src", dst: "/c/dst", groups: conf.Groups},
		{name: "arguments win, configured filters kept", pos: []string{"/a/src", "/a/dst"}, conf: *conf,
			src: "/a/src", dst: "/a/dst", groups: conf.Groups},
		{name: "argument filters replace configured groups", pos: []string{"/a/src", "/a/dst", "arch=amd64", "release=noble"}, conf: *conf,
			src: "/a/src", dst: "/a/dst", groups: []streams.Filters{{{Key: "arch", Op: "=", Value: "amd64"}, {Key: "release", Op: "=", Value: "noble"}}}},
		{name: "no target anywhere", conf: settings{Source: "/c/src"}, wantUsageText: "sync needs SOURCE and TARGET: as arguments"},
		{name: "one argument, no target configured", pos: []string{"/a/src"}, conf: settings{Source: "/c/src"}, wantUsageText: "sync needs SOURCE and TARGET"},
		// SOURCE as an argument, the target configured ($SSMIRROR_TARGET, the file): that target.
		{name: "SOURCE argument, target configured", pos: []string{"/a/src"}, conf: *conf, src: "/a/src", dst: "/c/dst", groups: conf.Groups},
		{name: "SOURCE and filter arguments, target configured", pos: []string{"/a/src", "arch=amd64"}, conf: *conf,
			src: "/a/src", dst: "/c/dst", groups: []streams.Filters{{{Key: "arch", Op: "=", Value: "amd64"}}}},
		// Filters alone as arguments, source and target configured: they replace the groups.
		{name: "filter arguments replace configured groups", pos: []string{"arch=arm64"}, conf: *conf,
			src: "/c/src", dst: "/c/dst", groups: []streams.Filters{{{Key: "arch", Op: "=", Value: "arm64"}}}},
		{name: "bad argument filter", pos: []string{"/a/src", "/a/dst", "arch"}, wantUsageText: "arch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dsts, groups, err := syncArgs(tt.pos, &tt.conf, nil)
			if tt.wantUsageText != "" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantUsageText) {
					t.Fatalf("error %v, want a usage error containing %q", err, tt.wantUsageText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if src != tt.src || len(dsts) != 1 || dsts[0] != tt.dst {
				t.Errorf("got %q %q, want %q %q", src, dsts, tt.src, tt.dst)
			}
			if diff := cmp.Diff(tt.groups, groups); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeployConfigs runs the real sync command line on every example config shipped in deploy/
// (the files and the Kubernetes ConfigMap), dry, against the committed fixture: each must be
// accepted (keys are flags, values parse, secrets absent) and its filters must select something.
func TestDeployConfigs(t *testing.T) {
	fx := fixtureDir(t)
	configs := map[string]string{}
	files, err := filepath.Glob(filepath.Join("..", "..", "deploy", "config", "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no deploy/config/*.conf: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		configs[f] = string(data)
	}
	manifest, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "cronjob.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(manifest))
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if doc.Kind == "ConfigMap" {
			for k, v := range doc.Data {
				configs["cronjob.yaml:"+k] = v
			}
		}
	}
	if len(configs) < 5 {
		t.Fatalf("found %d configs, want the 4 files and the one in the ConfigMap", len(configs))
	}
	added := map[string]int{} // items a config's dry run adds, by file name (and name/mirror)
	for name, text := range configs {
		if strings.Contains(text, "\n[mirror ") {
			t.Run(filepath.Base(name), func(t *testing.T) { dryRunMirrors(t, name, text, added) })
			continue
		}
		t.Run(filepath.Base(name), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.conf")
			if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			// SOURCE, TARGET and --keyring replaced by the fixture's; the rest as shipped.
			stdout, stderr, code := runMain(t, "sync", "--config", p, "--keyring", filepath.Join(fx, "keys", "test-keyring.gpg"),
				"--dry-run", filepath.Join(fx, "stream"), filepath.Join(t.TempDir(), "m"))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			// The shipped configs log JSON, so the dry run is a JSON summary (every line an
			// object) rather than sstream-mirror's plan lines.
			var sum struct {
				Added int `json:"items_added"`
			}
			if json.Unmarshal([]byte(stdout), &sum) == nil {
				added[name] = sum.Added
				if sum.Added == 0 {
					t.Errorf("the config's filters select nothing in the fixture:\n%s", stdout)
				}
			} else if !strings.Contains(stdout, "\n+ ") && !strings.HasPrefix(stdout, "+ ") {
				t.Errorf("the config's filters select nothing in the fixture:\n%s", stdout)
			}
		})
	}
	// The whole-selection config (a file and the ConfigMap's) holds the union of the two
	// one-group configs: images and bootloaders in one run.
	dir := filepath.Join("..", "..", "deploy", "config")
	images, loaders := added[filepath.Join(dir, "maas-images.conf")], added[filepath.Join(dir, "maas-bootloaders.conf")]
	if got := added[filepath.Join(dir, "maas.conf")]; got == 0 || got != images+loaders {
		t.Errorf("maas.conf adds %d items, want the images' %d plus the bootloaders' %d", got, images, loaders)
	}
	// The several-mirrors configs (a file and the ConfigMap's): their stable and bootloaders
	// sections are the two one-group configs.
	for _, multi := range []string{filepath.Join(dir, "mirrors.conf"), "cronjob.yaml:mirrors.conf"} {
		if added[multi+"/stable"] != images || added[multi+"/bootloaders"] != loaders || added[multi+"/lxd"] == 0 {
			t.Errorf("%s: stable adds %d items, bootloaders %d, lxd %d; want %d, %d and some", multi,
				added[multi+"/stable"], added[multi+"/bootloaders"], added[multi+"/lxd"], images, loaders)
		}
	}
}

// dryRunMirrors runs a config of [mirror] sections dry, as shipped but for its sources (the
// fixture stream; an LXD-style root, its unsigned streams/v1/index.json), targets (a directory
// each, shared where the config shares one) and keyrings (the fixture's); each mirror must
// select something. It records the items each adds as added[name+"/"+mirror].
func dryRunMirrors(t *testing.T, name, text string, added map[string]int) {
	fx := fixtureDir(t)
	dirs := map[string]string{}
	var lines []string
	for _, line := range strings.Split(text, "\n") {
		k, v, _ := strings.Cut(line, "=")
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "source":
			src := filepath.Join(fx, "stream")
			if !strings.Contains(v, "images.maas.io") {
				src = filepath.Join(src, "streams", "v1", "index.json")
			}
			line = "source = " + src
		case "target":
			if dirs[v] == "" {
				dirs[v] = filepath.Join(t.TempDir(), "m")
			}
			line = "target = " + dirs[v]
		case "keyring":
			line = "keyring = " + filepath.Join(fx, "keys", "test-keyring.gpg")
		case "s3-endpoint", "metrics-push":
			continue // no S3 target, no Pushgateway here
		}
		lines = append(lines, line)
	}
	p := filepath.Join(t.TempDir(), "c.conf")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runMain(t, "sync", "--config", p, "--dry-run", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	var doc struct {
		Mirrors []struct {
			Mirror  string `json:"mirror"`
			Summary struct {
				Added int `json:"items_added"`
			} `json:"summary"`
		} `json:"mirrors"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Mirrors) == 0 {
		t.Fatalf("not a --json document of mirrors: %v\n%s", err, stdout)
	}
	for _, m := range doc.Mirrors {
		added[name+"/"+m.Mirror] = m.Summary.Added
		if m.Summary.Added == 0 {
			t.Errorf("mirror %s: its filters select nothing in the fixture", m.Mirror)
		}
	}
}

// TestSyncArgsTargets: --target adds targets to TARGET (positional or configured); with it,
// TARGET may be left out; configured targets come from SSMIRROR_TARGET (commas, blanks) or
// several target lines.
func TestSyncArgsTargets(t *testing.T) {
	conf := &settings{Source: "/c/src", Target: "/c/a", Targets: []string{"/c/a", "/c/b"}}
	extra := []string{"s3://x/p", "s3://y/p"}
	for _, tt := range []struct {
		name  string
		pos   []string
		extra []string
		want  []string
		nf    int // filters in the one argument group
	}{
		{"configured targets", nil, nil, []string{"/c/a", "/c/b"}, 0},
		{"configured targets and --target", nil, extra, []string{"/c/a", "/c/b", "s3://x/p", "s3://y/p"}, 0},
		{"TARGET and --target", []string{"/a/src", "/a/dst", "arch=amd64"}, extra, []string{"/a/dst", "s3://x/p", "s3://y/p"}, 1},
		{"--target alone, filters", []string{"/a/src", "arch=amd64", "release=noble"}, extra, []string{"s3://x/p", "s3://y/p"}, 2},
		{"--target alone", []string{"/a/src"}, extra, []string{"s3://x/p", "s3://y/p"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, got, groups, err := syncArgs(tt.pos, conf, tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("targets %q, want %q", got, tt.want)
			}
			if tt.nf > 0 && (len(groups) != 1 || len(groups[0]) != tt.nf) {
				t.Errorf("groups %v, want one of %d filters", groups, tt.nf)
			}
		})
	}

	for name, c := range map[string]struct {
		env  map[string]string
		file string
	}{
		"environment": {env: map[string]string{"SSMIRROR_TARGET": "s3://a/p,s3://b/p  /srv/c"}},
		"config file": {file: "source = /s\ntarget = s3://a/p\ntarget = s3://b/p\ntarget = /srv/c\n"},
	} {
		t.Run(name, func(t *testing.T) {
			env := c.env
			if c.file != "" {
				path := filepath.Join(t.TempDir(), "c.conf")
				if err := os.WriteFile(path, []byte(c.file), 0o600); err != nil {
					t.Fatal(err)
				}
				env = map[string]string{"SSMIRROR_CONFIG": path}
			}
			var f syncFlags
			fs := newFlagSet("sync", syncUsage, io.Discard)
			f.Sync.AddFlags(fs)
			if err := fs.Parse(nil); err != nil {
				t.Fatal(err)
			}
			got, err := configure(fs, mapEnv(env))
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"s3://a/p", "s3://b/p", "/srv/c"}; !reflect.DeepEqual(got.Targets, want) || got.Target != want[0] {
				t.Errorf("targets %q (target %q), want %q", got.Targets, got.Target, want)
			}
		})
	}
}
