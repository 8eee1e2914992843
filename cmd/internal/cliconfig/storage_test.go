package cliconfig

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestS3LocationParameters: an s3:// location says how it is reached in go-cloud's s3blob URL
// parameters; they leave its bucket, prefix and root alone; an unknown one is a usage error
// naming the parameters accepted, and a credential is refused as such.
func TestS3LocationParameters(t *testing.T) {
	for _, tt := range []struct {
		raw    string
		want   Storage
		prefix string
		start  string
	}{
		{"s3://b/p?profile=site-a", Storage{Profile: "site-a"}, "p", ""},
		{"s3://b/p/?endpoint=http://127.0.0.1:9000&region=eu-1", Storage{Endpoint: "http://127.0.0.1:9000", Region: "eu-1"}, "p/", ""},
		{"s3://b?use_path_style=false&ca_bundle=/etc/ca.pem", Storage{Addressing: "virtual", CABundle: "/etc/ca.pem"}, "", ""},
		{"s3://b/p?s3ForcePathStyle=true&anonymous=true&awssdk=v2", Storage{Addressing: "path", Anonymous: true}, "p", ""},
		{"s3://b/p?dualstack=true&fips=true&accelerate=true&disable_https=true", Storage{DualStack: true, FIPS: true, Accelerate: true, DisableHTTPS: true}, "p", ""},
		{"s3://b/p/streams/v1/index.json?profile=x", Storage{Profile: "x"}, "p/", "streams/v1/index.json"},
	} {
		loc, err := ParseLocation(tt.raw)
		if err != nil {
			t.Errorf("%s: %v", tt.raw, err)
			continue
		}
		if loc.Storage != tt.want || loc.Bucket != "b" || loc.Prefix != tt.prefix || loc.Start != tt.start || strings.Contains(loc.Root, "?") {
			t.Errorf("%s: %+v, want storage %+v, prefix %q, start %q", tt.raw, loc, tt.want, tt.prefix, tt.start)
		}
	}
	for _, tt := range []struct{ raw, want string }{
		{"s3://b/p?endpont=http://x", `unknown parameter "endpont" (an s3:// location accepts profile, region, endpoint,`},
		{"s3://b/p?secret_access_key=abc", "credentials never go in a location"},
		{"s3://b/p?profile=a&profile=b", "profile given 2 times"},
		{"s3://b/p?profile=", "names no profile"},
		{"s3://b/p?use_path_style=maybe", "want true or false"},
		{"s3://b/p?endpoint=minio:9000", "want an http:// or https:// URL"},
		{"s3://b/p?awssdk=v1", "AWS SDK v2 only"},
	} {
		_, err := ParseLocation(tt.raw)
		var ue UsageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want a usage error saying %q", tt.raw, err, tt.want)
		}
	}
}

// TestStorageOverGlobal: a location's own settings win over the global ones; one naming its own
// profile takes endpoint and region from it, not from the global settings.
func TestStorageOverGlobal(t *testing.T) {
	def := Storage{Endpoint: "http://global:9000", Region: "g", Profile: "gp", CABundle: "/g.pem", Addressing: "path"}
	for _, tt := range []struct{ own, want Storage }{
		{Storage{}, def},
		{Storage{Region: "r"}, Storage{Endpoint: "http://global:9000", Region: "r", Profile: "gp", CABundle: "/g.pem", Addressing: "path"}},
		// Its own profile: the environment's endpoint and region do not override it either
		// (s3store.Options.OwnProfile).
		{Storage{Profile: "site-a"}, Storage{Profile: "site-a", CABundle: "/g.pem", Addressing: "path", ownProfile: true}},
		{Storage{Profile: "site-a", Endpoint: "http://a:9000", Addressing: "virtual"}, Storage{Profile: "site-a", Endpoint: "http://a:9000", CABundle: "/g.pem", Addressing: "virtual", ownProfile: true}},
	} {
		got := tt.own.over(def)
		if got != tt.want {
			t.Errorf("%+v over the global settings: %+v, want %+v", tt.own, got, tt.want)
		}
		if o := got.s3Options(); o.OwnProfile != tt.want.ownProfile {
			t.Errorf("%+v: s3 options say own profile %v", tt.own, o.OwnProfile)
		}
	}
	if o := (Storage{Endpoint: "http://a:9000"}).s3Options(); o.PathStyle != nil {
		t.Error("auto addressing forced a style (s3store picks path style for a custom endpoint)")
	}
	if o := (Storage{Addressing: "virtual"}).s3Options(); o.PathStyle == nil || *o.PathStyle {
		t.Error("virtual addressing not passed on")
	}
}

// TestTargetSections: a [target] section is one target with its own storage settings, under
// the global settings' keys, in the file's order among the target lines; in a file of [mirror]
// sections it belongs to its mirror. Mistakes are refused with FILE:LINE.
func TestTargetSections(t *testing.T) {
	path := writeConf(t, `source = s3://hub/maas?profile=hub
target = /srv/mirror
[target]
target = s3://site-a/maas
s3-endpoint = https://minio.site-a.example:9000
profile = site-a
s3-addressing-style = path
[filter]
arch=amd64
[target]
target = s3://site-b/maas
region = eu-west-1
s3-ca-bundle = /etc/ssl/site-b.pem
`)
	_, fs := syncFlagSet(t)
	conf, err := Configure(fs, envOf(map[string]string{"SSMIRROR_CONFIG": path}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/srv/mirror", "s3://site-a/maas", "s3://site-b/maas"}; !slices.Equal(conf.Targets, want) || conf.Source != "s3://hub/maas?profile=hub" {
		t.Errorf("source %q, targets %q; want %q", conf.Source, conf.Targets, want)
	}
	if got := conf.Storage["s3://site-a/maas"]; got != (Storage{Endpoint: "https://minio.site-a.example:9000", Profile: "site-a", Addressing: "path"}) {
		t.Errorf("site-a: %+v", got)
	}
	if got := conf.Storage["s3://site-b/maas"]; got != (Storage{Region: "eu-west-1", CABundle: "/etc/ssl/site-b.pem"}) {
		t.Errorf("site-b: %+v", got)
	}
	if len(conf.Groups) != 1 {
		t.Errorf("the [filter] after a [target] section: groups %v", conf.Groups)
	}

	mirrors := writeConf(t, `[mirror a]
source = /srv/up
[target]
target = s3://a/m
profile = site-a
[target]
target = s3://b/m
`)
	_, fs = syncFlagSet(t)
	conf, err = ConfigureMirror(fs, envOf(map[string]string{"SSMIRROR_CONFIG": mirrors}), nil, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(conf.Targets, []string{"s3://a/m", "s3://b/m"}) || conf.Storage["s3://a/m"].Profile != "site-a" {
		t.Errorf("mirror a: targets %q, storage %+v", conf.Targets, conf.Storage)
	}

	for _, tt := range []struct{ text, want string }{
		{"source = /s\n[target]\ntarget = s3://a/m\nmax = 2\n", ":4: max is not a setting of one target"},
		{"source = /s\n[target]\nprofile = x\n", ":2: [target] has no target = LOCATION"},
		{"source = /s\n[target]\ntarget = /srv/m\nprofile = x\n", "storage settings (s3-endpoint, region, profile, s3-ca-bundle, s3-addressing-style) are for s3:// locations"},
		{"source = /s\n[target]\ntarget = s3://a/m\ns3-addressing-style = sideways\n", ":4: s3-addressing-style \"sideways\": want auto, path, virtual"},
		{"source = /s\n[target]\ntarget = s3://a/m\ns3-endpoint = minio:9000\n", ":4: s3-endpoint minio:9000: want an http:// or https:// URL"},
		{"source = /s\n[target]\ntarget = s3://a/m\nregion = a\nregion = b\n", ":5: region set twice"},
		{"[target]\ntarget = s3://a/m\n[mirror a]\nsource = /s\ntarget = /t\n", ":1: [target] before the first [mirror] section"},
		{"source = /s\n[source]\nsource = /t\n[target]\ntarget = /u\n", "a [source] section and a source line"},
	} {
		_, fs := syncFlagSet(t)
		_, err := Configure(fs, envOf(map[string]string{"SSMIRROR_CONFIG": writeConf(t, tt.text)}), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want an error saying %q", tt.text, err, tt.want)
		}
	}
}
