package job

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
)

// TestLocate: every target keeps its own storage settings (URL parameters and its section's);
// one place written twice is refused, two buckets of one name on two services are not; a
// setting given both in the URL and in the section, differently, is refused naming the target.
func TestLocate(t *testing.T) {
	storage := map[string]cliconfig.Storage{"s3://b/m": {Endpoint: "http://site-b:9000", Profile: "site-b"}}
	j, err := Locate("/srv/up", []string{"/srv/www", "s3://b/m?profile=site-a", "s3://b/m"}, storage)
	if err != nil {
		t.Fatal(err)
	}
	if got := j.Targets[1].Loc.Storage; got.Profile != "site-a" || got.Endpoint != "" {
		t.Errorf("target 1: %+v", got)
	}
	if got := j.Targets[2].Loc.Storage; got != storage["s3://b/m"] {
		t.Errorf("target 2: %+v", got)
	}
	if got := strings.Join(j.Names(), ", "); got != "/srv/www, s3://b/m?profile=site-a, s3://b/m" {
		t.Errorf("names: %q", got)
	}
	for _, tt := range []struct {
		targets []string
		want    string
	}{
		{[]string{"/srv/www", "/srv/www/"}, "target /srv/www/ is given twice"},
		{[]string{"s3://b/m?profile=x", "s3://b/m/?profile=x"}, "is given twice"},
		{[]string{"s3://b/m?profile=site-a"}, "its profile is given both in the location (site-a) and in its section (site-b)"},
	} {
		st := map[string]cliconfig.Storage{}
		if len(tt.targets) == 1 {
			st[tt.targets[0]] = storage["s3://b/m"]
		}
		if _, err := Locate("/srv/up", tt.targets, st); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.targets, err, tt.want)
		}
	}
}

// TestConfigureOne: a command on one mirror takes TARGET, else the one target configured; from
// a file of [mirror] sections, the section --only-mirror names or the one listing TARGET, with
// its settings and its target's section.
func TestConfigureOne(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := write("one.conf", "source = /srv/up\nmax = 1\ns3-endpoint = http://top:9000\ntarget = s3://a/m\n")
	two := write("two.conf", "source = /srv/up\ntarget = s3://a/m\ntarget = /srv/www\n")
	sections := write("sections.conf", "region = r1\n[mirror x]\nsource = /srv/up\n[target]\ntarget = s3://x/m\nprofile = site-x\n"+
		"[mirror y]\nsource = /srv/up\ntarget = s3://y/m\nregion = r2\n")
	run := func(env map[string]string, mirror string, args ...string) (Place, *cliconfig.S3Flags, error) {
		var s3f cliconfig.S3Flags
		fs := pflag.NewFlagSet("status", pflag.ContinueOnError)
		s3f.AddFlags(fs)
		cliconfig.AddConfigFlag(fs)
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		isSetting := func(k string) bool { return k == "max" || k == "source" || k == "target" || fs.Lookup(k) != nil }
		p, err := ConfigureOne(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, isSetting, mirror, "status", args)
		return p, &s3f, err
	}

	p, s3f, err := run(map[string]string{"SSMIRROR_CONFIG": one}, "")
	if st, _ := s3f.Storage(); err != nil || p.Name != "s3://a/m" || st.Endpoint != "http://top:9000" {
		t.Errorf("the configured target: %+v, %+v, %v", p, st, err)
	}
	if p, _, err = run(map[string]string{"SSMIRROR_TARGET": "s3://e/m?region=r9"}, ""); err != nil || p.Loc.Storage.Region != "r9" {
		t.Errorf("$SSMIRROR_TARGET: %+v, %v", p, err)
	}
	p, s3f, err = run(map[string]string{"SSMIRROR_CONFIG": sections}, "", "s3://x/m")
	if st, _ := s3f.Storage(); err != nil || p.Loc.Storage.Profile != "site-x" || st.Region != "r1" {
		t.Errorf("TARGET of section x: %+v, %+v, %v", p, st, err)
	}
	p, s3f, err = run(map[string]string{"SSMIRROR_CONFIG": sections}, "y")
	if st, _ := s3f.Storage(); err != nil || p.Name != "s3://y/m" || st.Region != "r2" {
		t.Errorf("--only-mirror y: %+v, %+v, %v", p, st, err)
	}
	if p, _, err = run(map[string]string{"SSMIRROR_CONFIG": sections, "SSMIRROR_ONLY_MIRROR": "y"}, ""); err != nil || p.Name != "s3://y/m" {
		t.Errorf("$SSMIRROR_ONLY_MIRROR=y: %+v, %v", p, err)
	}
	for _, tt := range []struct {
		env    map[string]string
		mirror string
		args   []string
		want   string
	}{
		{map[string]string{}, "", nil, "status needs exactly one TARGET"},
		{map[string]string{}, "", []string{"/a", "/b"}, "status needs exactly one TARGET"},
		{map[string]string{"SSMIRROR_CONFIG": two}, "", nil, "the configuration names 2 (s3://a/m, /srv/www)"},
		{map[string]string{"SSMIRROR_CONFIG": sections}, "", nil, "holds [mirror] sections (x, y): name one with --only-mirror NAME"},
		{map[string]string{"SSMIRROR_CONFIG": sections}, "", []string{"s3://z/m"}, "no [mirror] section of " + sections + " lists the target s3://z/m"},
		{map[string]string{"SSMIRROR_TARGET": "https://example.com/m"}, "", nil, "the target must be a directory or s3://bucket/prefix"},
	} {
		if _, _, err := run(tt.env, tt.mirror, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v %q %q: %v, want %q", tt.env, tt.mirror, tt.args, err, tt.want)
		}
	}
}
