package cliconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/ssmirror/ssmirror/internal/bwlimit"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/spf13/pflag"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/store/s3store"
)

// S3Flags configure S3 access beyond what the AWS SDK reads from its own chain (environment,
// shared config and credentials files, IMDS, web identity).
type S3Flags struct {
	endpoint        string
	region          string
	Profile         string
	caBundle        string
	addressing      string
	partSize        int64
	partConcurrency int
	uploadBuffers   int64
	uploadChecksum  string

	// RetryLog is not a flag: the run's logger, where the S3 client logs each request the AWS
	// SDK retries (nil: nowhere).
	RetryLog *slog.Logger

	// buffers is the part-buffer budget (--upload-buffers) every S3 store opened with these
	// flags shares: one per run, whatever the number of S3 targets. (Stores are opened one
	// after the other.)
	buffers    *s3store.Buffers
	buffersFor [2]int64 // the --upload-buffers and --part-size buffers was made for
}

// sharedBuffers returns the one part-buffer budget of the stores opened with f, made on first
// use (again if the flags changed since).
func (f *S3Flags) sharedBuffers() *s3store.Buffers {
	if key := [2]int64{f.uploadBuffers, f.partSize}; f.buffers == nil || f.buffersFor != key {
		f.buffers, f.buffersFor = s3store.NewBuffers(f.uploadBuffers, f.partSize), key
	}
	return f.buffers
}

// Check refuses an S3 setting that cannot be used, naming where it came from (fs is the flag
// set AddFlags filled).
func (f *S3Flags) Check(fs *pflag.FlagSet) error {
	if _, err := checkAddressing(f.addressing); err != nil {
		return Usagef("%s--s3-addressing-style %v", From(fs, "s3-addressing-style"), err)
	}
	if f.partSize < s3store.MinPartSize || f.partSize > s3store.MaxPartSize {
		return Usagef("%s--part-size %s: want at least %s (S3's smallest part) and at most %s", From(fs, "part-size"),
			units.FormatSize(f.partSize), units.FormatSize(s3store.MinPartSize), units.FormatSize(s3store.MaxPartSize))
	}
	if f.partConcurrency < 1 {
		return Usagef("%s--part-concurrency %d: want at least 1", From(fs, "part-concurrency"), f.partConcurrency)
	}
	return nil
}

// AddFlags adds the S3 flags to fsAdd.
func (f *S3Flags) AddFlags(fsAdd *pflag.FlagSet) {
	fsAdd.StringVar(&f.endpoint, "s3-endpoint", "", "S3 endpoint URL for MinIO and other S3-compatible stores (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, the profile's endpoint_url, then AWS); implies path-style addressing. The default of every s3:// location that names no endpoint or profile of its own (s3://bucket/prefix?endpoint=URL, ?profile=NAME)")
	fsAdd.StringVar(&f.region, "region", "", "S3 region (default: the SDK's configuration, else us-east-1); the default of every s3:// location that names no region or profile of its own (?region=)")
	fsAdd.StringVar(&f.Profile, "profile", "", "AWS shared-config profile (its endpoint_url, region, credentials and ca_bundle); the default of every s3:// location that names no profile of its own (s3://bucket/prefix?profile=NAME)")
	fsAdd.StringVar(&f.caBundle, "s3-ca-bundle", "", "PEM file of the CAs trusted for S3 endpoints (default: $AWS_CA_BUNDLE, the profile's ca_bundle); a location may name its own (?ca_bundle=FILE)")
	fsAdd.StringVar(&f.addressing, "s3-addressing-style", "auto", "S3 addressing: auto (path style with a custom endpoint, virtual-hosted for AWS), path or virtual; a location may say its own (?use_path_style=true|false)")
	fsAdd.Var(units.NewSize(&f.partSize, s3store.DefaultPartSize), "part-size", "multipart part size, as 16MiB or bytes (at least 5MiB)")
	fsAdd.IntVar(&f.partConcurrency, "part-concurrency", 4, "parts of one object uploaded at once")
	fsAdd.Var(units.NewSize(&f.uploadBuffers, s3store.DefaultBufferBudget), "upload-buffers", "part buffers all uploads of a run share, as 64MiB or bytes (at least two parts)")
	fsAdd.StringVar(&f.uploadChecksum, "upload-checksum", string(s3store.DefaultChecksum), "checksum every S3 upload request carries for the server to verify: crc32c, crc64nvme, md5 (Content-MD5), or none for servers that check neither")
}

// TLSFlags configure TLS towards an HTTPS upstream. (S3 endpoints take their CA bundle from
// AWS_CA_BUNDLE, as every AWS SDK does.)
type TLSFlags struct {
	caCert   string
	insecure bool
}

// AddFlags adds the TLS flags to fs.
func (f *TLSFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.caCert, "ca-cert", "", "PEM file of extra CA certificates trusted for an HTTPS SOURCE (S3 endpoints: $AWS_CA_BUNDLE)")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify the HTTPS SOURCE's certificate (dangerous: metadata signatures and content hashes remain the only protection)")
}

// HTTPClient builds the upstream HTTP client: TLS verification on, with extra CAs if given.
// The warning --insecure deserves goes to stderr.
func (f *TLSFlags) HTTPClient(stderr io.Writer) (*http.Client, error) {
	client := httpstore.DefaultClient()
	if f.caCert == "" && !f.insecure {
		return client, nil
	}
	tr, ok := client.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("unexpected HTTP transport %T", client.Transport)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caCert != "" {
		pem, err := os.ReadFile(f.caCert)
		if err != nil {
			return nil, Usagef("--ca-cert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, Usagef("--ca-cert %s: no PEM certificate in it", f.caCert)
		}
		cfg.RootCAs = pool
	}
	if f.insecure {
		fmt.Fprintln(stderr, "ssmirror: WARNING: --insecure: the source's TLS certificate is NOT verified; anyone on the path can answer in its place")
		cfg.InsecureSkipVerify = true
	}
	tr.TLSClientConfig = cfg
	return client, nil
}

// Location is a parsed SOURCE or TARGET.
type Location struct {
	Kind string // "http", "s3", "dir"
	// Root is the URL, directory, or bucket/prefix of the mirror root. A URL's user info is
	// never in it (Root is printed): it is kept in auth and sent only to the source.
	Root   string
	auth   *url.Userinfo
	Bucket string
	Prefix string
	// Storage are an s3:// location's own storage settings: its URL's parameters
	// (?profile=, ?endpoint=, ...), or its [target] section's keys.
	Storage Storage
	// Start is the metadata path named by the location itself ("" when it names a root).
	Start string
}

// ParseLocation splits a location; a URL or path ending in streams/v1/NAME.sjson or .json names
// its start path. User info in an http(s) URL is taken out of root into auth; no message quotes
// it (shown is raw without it).
func ParseLocation(raw string) (Location, error) {
	var loc Location
	shown := httpstore.StripUserInfo(raw)
	switch {
	case strings.HasPrefix(raw, "http://"), strings.HasPrefix(raw, "https://"):
		u, err := url.Parse(raw)
		if err != nil {
			if shown != raw {
				// The parser's message may quote the user info.
				return loc, Usagef("%q: not a valid URL", shown)
			}
			return loc, Usagef("%q: %v", shown, errors.Unwrap(err))
		}
		loc.Kind, loc.auth = "http", u.User
		u.User = nil
		loc.Root = u.String()
	case strings.HasPrefix(raw, "s3://"):
		rest, query, _ := strings.Cut(strings.TrimPrefix(raw, "s3://"), "?")
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return loc, Usagef("%q: no bucket named", shown)
		}
		if shown != raw {
			return loc, Usagef("%q: an s3:// URL takes no user info (S3 credentials come from the AWS configuration: environment, profile, role)", shown)
		}
		st, err := parseS3Query(shown, query)
		if err != nil {
			return loc, err
		}
		loc.Kind, loc.Bucket, loc.Prefix, loc.Root, loc.Storage = "s3", bucket, prefix, "s3://"+rest, st
	case strings.HasPrefix(raw, "file://"):
		if shown != raw {
			return loc, Usagef("%q: a file:// URL takes no user info", shown)
		}
		loc.Kind, loc.Root = "dir", strings.TrimPrefix(raw, "file://")
	case strings.Contains(raw, "://"):
		return loc, Usagef("%q: unsupported scheme (use http(s)://, s3://, file:// or a directory)", shown)
	case malformedScheme(shown) != "":
		scheme := malformedScheme(shown)
		return loc, Usagef("%q: a %s location is written %s://… (did you mean %s://%s?)", shown, scheme, scheme, scheme, strings.TrimLeft(shown[len(scheme)+1:], "/"))
	default:
		loc.Kind, loc.Root = "dir", raw
	}
	// Split off a start path.
	target := loc.Root
	if loc.Kind == "s3" {
		target = loc.Prefix
	}
	if i := strings.LastIndex(target, "streams/v1/"); i >= 0 && (strings.HasSuffix(target, ".json") || strings.HasSuffix(target, ".sjson")) {
		start := target[i:]
		if !strings.Contains(strings.TrimPrefix(start, "streams/v1/"), "/") {
			loc.Start = start
			if loc.Kind == "s3" {
				loc.Prefix = target[:i]
			} else {
				loc.Root = target[:i]
			}
		}
	}
	return loc, nil
}

// SamePlace reports whether two locations are one place written two ways (a trailing slash, a
// dot segment, the same bucket and prefix on the same service): two runs there would meet at
// its lock.
func SamePlace(a, b Location) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case "s3":
		return a.Bucket == b.Bucket && strings.Trim(a.Prefix, "/") == strings.Trim(b.Prefix, "/") &&
			a.Storage.Endpoint == b.Storage.Endpoint && a.Storage.Profile == b.Storage.Profile
	case "http":
		return strings.TrimSuffix(a.Root, "/") == strings.TrimSuffix(b.Root, "/")
	}
	return filepath.Clean(a.Root) == filepath.Clean(b.Root)
}

// malformedScheme returns the scheme of a location that starts like a URL of a kind ssmirror
// reads but lacks the "//" (s3:/bucket, s3:bucket, https:/host): such a string would otherwise
// be taken for a directory name.
func malformedScheme(raw string) string {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || strings.HasPrefix(rest, "//") {
		return ""
	}
	switch strings.ToLower(scheme) {
	case "s3", "http", "https", "file":
		return strings.ToLower(scheme)
	}
	return ""
}

// OpenSource opens a location for reading; client is used for HTTP(S) sources (nil: the
// default), which are told userAgent.
func OpenSource(ctx context.Context, loc Location, s3f *S3Flags, mirrors []string, client *http.Client, userAgent string) (store.Source, error) {
	switch loc.Kind {
	case "http":
		if client == nil {
			client = httpstore.DefaultClient()
		}
		if err := checkTLS(ctx, "source", loc.Root, client); err != nil {
			return nil, err
		}
		return httpstore.New(client, loc.sourceURL(), httpstore.Options{Mirrors: mirrors, UserAgent: userAgent})
	case "s3":
		return OpenS3(ctx, loc, s3f)
	default:
		info, err := os.Stat(loc.Root)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("source %s is not a directory", loc.Root)
		}
		return dirstore.New(loc.Root, dirstore.Options{})
	}
}

// OpenTarget opens a location for writing; a directory target is created if missing.
func OpenTarget(ctx context.Context, loc Location, s3f *S3Flags) (store.Target, error) {
	if loc.Start != "" {
		return nil, Usagef("the target names a metadata file (%s); name the mirror root", loc.Start)
	}
	switch loc.Kind {
	case "http":
		return nil, Usagef("cannot publish into %s: the target must be a directory or s3://bucket/prefix", loc.Root)
	case "s3":
		return OpenS3(ctx, loc, s3f)
	default:
		root, err := filepath.Abs(loc.Root)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		return dirstore.New(root, dirstore.Options{})
	}
}

// Profile is the AWS profile the location is reached with: its own, else def (the global one).
// A CDN in front of the target is reached with the same.
func (l Location) Profile(def string) string {
	if l.Storage.Profile != "" {
		return l.Storage.Profile
	}
	return def
}

// sourceURL is an http location's root with its user info put back, for httpstore (which sends
// it as basic auth and never shows it). Never print it.
func (l Location) sourceURL() string {
	if l.auth == nil {
		return l.Root
	}
	u, err := url.Parse(l.Root)
	if err != nil {
		return l.Root
	}
	u.User = l.auth
	return u.String()
}

// Storage are the global storage settings: the defaults of every s3:// location that does not
// say otherwise (see Storage).
func (f *S3Flags) Storage() (Storage, error) {
	addr, err := checkAddressing(f.addressing)
	if err != nil {
		return Storage{}, Usagef("--s3-addressing-style %v", err)
	}
	if f.endpoint != "" {
		if err := checkEndpoint(f.endpoint); err != nil {
			return Storage{}, Usagef("--s3-endpoint %s: %v", f.endpoint, err)
		}
	}
	return Storage{Endpoint: f.endpoint, Region: f.region, Profile: f.Profile, CABundle: f.caBundle, Addressing: addr}, nil
}

// OpenS3 opens an s3:// location with its own storage settings over the global ones (f),
// checking the endpoint's TLS and the credentials first.
func OpenS3(ctx context.Context, loc Location, f *S3Flags) (store.Target, error) {
	checksum, err := s3store.ParseChecksum(f.uploadChecksum)
	if err != nil {
		return nil, Usagef("--upload-checksum: %v", err)
	}
	def, err := f.Storage()
	if err != nil {
		return nil, err
	}
	st := loc.Storage.over(def)
	opts := st.s3Options()
	opts.Checksum = checksum
	opts.PartSize = f.partSize
	opts.PartConcurrency = f.partConcurrency
	opts.BufferBudget = f.uploadBuffers
	opts.Buffers = f.sharedBuffers()
	opts.RetryLog = f.RetryLog
	if opts.CABundle == "" {
		if env := os.Getenv("AWS_CA_BUNDLE"); env != "" {
			if _, err := os.Stat(env); err != nil {
				return nil, Usagef("AWS_CA_BUNDLE=%s: %v: point the variable at a PEM file of CA certificates, or unset it", env, errors.Unwrap(err))
			}
		}
	}
	client, err := s3store.NewClient(ctx, opts)
	if err != nil {
		var np config.SharedConfigProfileNotExistError
		if errors.As(err, &np) {
			return nil, Usagef("S3 configuration: no profile %s in ~/.aws/config or ~/.aws/credentials ($AWS_CONFIG_FILE, $AWS_SHARED_CREDENTIALS_FILE): fix --profile, AWS_PROFILE or ?profile= on the location", np.Profile)
		}
		return nil, UsageError{fmt.Errorf("S3 configuration%s: %w", st.origin(), err)}
	}
	if ep := client.Options().BaseEndpoint; ep != nil {
		if err := probeEndpoint(ctx, "S3 endpoint", *ep, client.Options().HTTPClient); err != nil {
			return nil, err
		}
	}
	if !st.Anonymous {
		if err := checkCredentials(ctx, client, st.Profile); err != nil {
			return nil, err
		}
	}
	return s3store.New(client, loc.Bucket, loc.Prefix, opts), nil
}

// origin says which profile settings came from, for messages (" (profile NAME)" or "").
func (s Storage) origin() string {
	if s.Profile == "" {
		return ""
	}
	return " (profile " + s.Profile + ")"
}

// LimitSource caps what the run reads from src at rate bytes a second, all readers together
// (ranged reads included); rate <= 0 leaves src as it is.
func LimitSource(src store.Source, rate int64) store.Source {
	if rate <= 0 {
		return src
	}
	return bwlimit.Store(src, bwlimit.New(rate, nil, nil))
}
