package cliconfig

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ssmirror/ssmirror/store/s3store"
)

// Per-location storage settings.
//
// Every s3:// location (each target, and an s3:// source) may be reached on its own service, as
// its own principal: its own endpoint, region, credentials, CA bundle and addressing style. The
// words are the ecosystem's:
//
//   - An AWS shared-config profile (~/.aws/config, ~/.aws/credentials) gives a location its
//     endpoint_url, region, credentials and ca_bundle at once: s3://bucket/prefix?profile=site-a.
//   - go-cloud's s3blob URL parameters say the rest on the location itself:
//     ?region=, ?endpoint=, ?use_path_style= (or s3ForcePathStyle), ?anonymous=, ?dualstack=,
//     ?fips=, ?accelerate=, ?disable_https=, ?awssdk=v2; and ssmirror adds ?ca_bundle=FILE (the
//     shared config's key).
//   - In ssmirror's config file, a [target] section gives one target the keys the global
//     settings use: s3-endpoint, region, profile, s3-ca-bundle, s3-addressing-style.
//
// The global settings (--s3-endpoint, --region, --profile, --s3-ca-bundle,
// --s3-addressing-style, from flags, $SSMIRROR_* or the file) are the defaults of a location
// that does not say otherwise. A location naming its own profile takes its endpoint and region
// from that profile (or its own parameters), not from the global ones. A custom endpoint
// implies path-style addressing, however it was given (a profile's endpoint_url included),
// unless an addressing style is given. Secrets never go in a location or in the config file:
// credentials come from the SDK's chain, through a profile.

// Storage says how an s3:// location is reached: which service, as whom, trusting which CAs.
// The zero value says nothing (the global settings apply).
type Storage struct {
	Endpoint string
	Region   string
	Profile  string
	// CABundle is a PEM file of CAs trusted for the endpoint ("": AWS_CA_BUNDLE, the profile's
	// ca_bundle, else the system's).
	CABundle string
	// Addressing is "path", "virtual", or "" (auto: path style with a custom endpoint).
	Addressing string
	// go-cloud's s3blob switches (URL parameters only).
	Anonymous, DualStack, FIPS, Accelerate, DisableHTTPS bool
	// ownProfile: Profile is the location's own (over), whose endpoint and region the
	// environment's AWS_ENDPOINT_URL and AWS_REGION do not override (s3store.Options.OwnProfile).
	ownProfile bool
}

// over is s with every setting it leaves unset taken from def (the global settings). A location
// naming its own profile takes its endpoint and region from that profile: def's are not used.
func (s Storage) over(def Storage) Storage {
	out := s
	out.ownProfile = s.Profile != ""
	if s.Profile == "" {
		out.Profile = def.Profile
		out.Endpoint = orElse(s.Endpoint, def.Endpoint)
		out.Region = orElse(s.Region, def.Region)
	}
	out.CABundle = orElse(s.CABundle, def.CABundle)
	out.Addressing = orElse(s.Addressing, def.Addressing)
	return out
}

func orElse(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// s3Options are the s3store options of these (resolved) settings.
func (s Storage) s3Options() s3store.Options {
	o := s3store.Options{
		Endpoint: s.Endpoint, Region: s.Region, Profile: s.Profile, OwnProfile: s.ownProfile, CABundle: s.CABundle,
		Anonymous: s.Anonymous, DualStack: s.DualStack, FIPS: s.FIPS, Accelerate: s.Accelerate, DisableHTTPS: s.DisableHTTPS,
	}
	switch s.Addressing {
	case "path":
		o.PathStyle = new(true)
	case "virtual":
		o.PathStyle = new(false)
	}
	return o
}

// IsZero reports whether s says nothing.
func (s Storage) IsZero() bool { return s == Storage{} }

// addressingStyles are the values of --s3-addressing-style (the AWS CLI's addressing_style).
var addressingStyles = []string{"auto", "path", "virtual"}

// checkAddressing normalises an addressing style ("auto" is "").
func checkAddressing(v string) (string, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if !slices.Contains(addressingStyles, v) && v != "" {
		return "", fmt.Errorf("%q: want %s", v, strings.Join(addressingStyles, ", "))
	}
	if v == "auto" {
		v = ""
	}
	return v, nil
}

// URLParams are the query parameters an s3:// location accepts: go-cloud's s3blob URL
// parameters that say how the bucket is reached, and ca_bundle.
var URLParams = []string{"profile", "region", "endpoint", "use_path_style", "s3ForcePathStyle", "ca_bundle",
	"anonymous", "dualstack", "fips", "accelerate", "disable_https", "awssdk"}

// secretParams are parameter names that would put a credential in a location, refused as such.
var secretParams = []string{"access_key", "accesskey", "access_key_id", "secret", "secret_key", "secret_access_key", "session_token", "token", "password", "credentials"}

// parseS3Query reads an s3:// location's query (raw, without the "?"): shown names the location.
func parseS3Query(shown, raw string) (Storage, error) {
	var st Storage
	q, err := url.ParseQuery(raw)
	if err != nil {
		return st, Usagef("%q: its query does not parse: %v", shown, err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vals := q[k]
		if slices.Contains(secretParams, strings.ToLower(k)) {
			return st, Usagef("%q: %s: credentials never go in a location (it is shown in logs and summaries): put them in a profile of ~/.aws/credentials and name it with ?profile=NAME", shown, k)
		}
		if !slices.Contains(URLParams, k) {
			return st, Usagef("%q: unknown parameter %q (an s3:// location accepts %s)", shown, k, strings.Join(URLParams, ", "))
		}
		if len(vals) > 1 {
			return st, Usagef("%q: %s given %d times", shown, k, len(vals))
		}
		v := vals[0]
		flag := func(b *bool) error {
			x, err := strconv.ParseBool(v)
			if err != nil {
				return Usagef("%q: %s=%s: want true or false", shown, k, v)
			}
			*b = x
			return nil
		}
		var perr error
		switch k {
		case "profile":
			if v == "" {
				perr = Usagef("%q: profile= names no profile", shown)
			}
			st.Profile = v
		case "region":
			st.Region = v
		case "endpoint":
			if perr = checkEndpoint(v); perr != nil {
				perr = Usagef("%q: endpoint=%s: %v", shown, v, perr)
			}
			st.Endpoint = v
		case "ca_bundle":
			st.CABundle = v
		case "use_path_style", "s3ForcePathStyle":
			var path bool
			if perr = flag(&path); perr == nil {
				st.Addressing = "virtual"
				if path {
					st.Addressing = "path"
				}
			}
		case "anonymous":
			perr = flag(&st.Anonymous)
		case "dualstack":
			perr = flag(&st.DualStack)
		case "fips":
			perr = flag(&st.FIPS)
		case "accelerate":
			perr = flag(&st.Accelerate)
		case "disable_https":
			perr = flag(&st.DisableHTTPS)
		case "awssdk":
			if !strings.EqualFold(v, "v2") {
				perr = Usagef("%q: awssdk=%s: ssmirror uses the AWS SDK v2 only (awssdk=v2)", shown, v)
			}
		}
		if perr != nil {
			return st, perr
		}
	}
	return st, nil
}

// checkEndpoint refuses an endpoint that is not an http(s) URL with a host.
func checkEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an http:// or https:// URL")
	}
	if u.User != nil {
		return fmt.Errorf("an endpoint takes no user info (credentials come from the AWS configuration)")
	}
	return nil
}

// MergeStorage adds a location's config file section (sec) to its URL parameters (own); a
// setting given both ways is refused.
func MergeStorage(own, sec Storage) (Storage, error) {
	out := own
	for _, f := range []struct {
		name     string
		dst      *string
		val, got string
	}{
		{"endpoint", &out.Endpoint, sec.Endpoint, own.Endpoint},
		{"region", &out.Region, sec.Region, own.Region},
		{"profile", &out.Profile, sec.Profile, own.Profile},
		{"CA bundle", &out.CABundle, sec.CABundle, own.CABundle},
		{"addressing style", &out.Addressing, sec.Addressing, own.Addressing},
	} {
		if f.val == "" {
			continue
		}
		if f.got != "" && f.got != f.val {
			return own, fmt.Errorf("its %s is given both in the location (%s) and in its section (%s)", f.name, f.got, f.val)
		}
		*f.dst = f.val
	}
	return out, nil
}
