package main

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
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"
	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/streams"
)

// s3Flags configure S3 access beyond what the AWS SDK reads from its own chain (environment,
// shared config and credentials files, IMDS, web identity).
type s3Flags struct {
	endpoint        string
	region          string
	profile         string
	partSize        int64
	partConcurrency int
	uploadBuffers   int64
	uploadChecksum  string

	// retryLog is not a flag: the run's logger, where the S3 client logs each request the AWS
	// SDK retries (nil: nowhere).
	retryLog *slog.Logger
}

func (f *s3Flags) addFlags(fsAdd *pflag.FlagSet) {
	fsAdd.StringVar(&f.endpoint, "s3-endpoint", "", "S3 endpoint URL for MinIO and other S3-compatible stores (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, then AWS); implies path-style addressing")
	fsAdd.StringVar(&f.region, "region", "", "S3 region (default: the SDK's configuration, else us-east-1)")
	fsAdd.StringVar(&f.profile, "profile", "", "AWS shared-config profile")
	fsAdd.Var(units.NewSize(&f.partSize, s3store.DefaultPartSize), "part-size", "multipart part size, as 16MiB or bytes (at least 5MiB)")
	fsAdd.IntVar(&f.partConcurrency, "part-concurrency", 4, "parts of one object uploaded at once")
	fsAdd.Var(units.NewSize(&f.uploadBuffers, s3store.DefaultBufferBudget), "upload-buffers", "part buffers all uploads of a run share, as 64MiB or bytes (at least two parts)")
	fsAdd.StringVar(&f.uploadChecksum, "upload-checksum", string(s3store.DefaultChecksum), "checksum every S3 upload request carries for the server to verify: crc32c, crc64nvme, md5 (Content-MD5), or none for servers that check neither")
}

// tlsFlags configure TLS towards an HTTPS upstream. (S3 endpoints take their CA bundle from
// AWS_CA_BUNDLE, as every AWS SDK does.)
type tlsFlags struct {
	caCert   string
	insecure bool
}

func (f *tlsFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.caCert, "ca-cert", "", "PEM file of extra CA certificates trusted for an HTTPS SOURCE (S3 endpoints: $AWS_CA_BUNDLE)")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify the HTTPS SOURCE's certificate (dangerous: metadata signatures and content hashes remain the only protection)")
}

// httpClient builds the upstream HTTP client: TLS verification on, with extra CAs if given.
func (f *tlsFlags) httpClient(stderr io.Writer) (*http.Client, error) {
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
			return nil, usagef("--ca-cert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--ca-cert %s: no PEM certificate in it", f.caCert)
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

// warnUnprotected says so when nothing protects what is read: no signature check and a plain
// HTTP source.
func warnUnprotected(stderr io.Writer, loc location, keyring bool) {
	if loc.kind != "http" || !strings.HasPrefix(loc.root, "http://") || keyring {
		return
	}
	fmt.Fprintf(stderr, "ssmirror: WARNING: %s is read over plain HTTP without checking signatures (no --keyring): anyone on the path can change what is mirrored\n", loc.root)
}

// location is a parsed SOURCE or TARGET.
type location struct {
	kind string // "http", "s3", "dir"
	// root is the URL, directory, or bucket/prefix of the mirror root. A URL's user info is
	// never in it (root is printed): it is kept in auth and sent only to the source.
	root   string
	auth   *url.Userinfo
	bucket string
	prefix string
	// start is the metadata path named by the location itself ("" when it names a root).
	start string
}

// parseLocation splits a location; a URL or path ending in streams/v1/NAME.sjson or .json names
// its start path. User info in an http(s) URL is taken out of root into auth; no message quotes
// it (shown is raw without it).
func parseLocation(raw string) (location, error) {
	var loc location
	shown := httpstore.StripUserInfo(raw)
	switch {
	case strings.HasPrefix(raw, "http://"), strings.HasPrefix(raw, "https://"):
		u, err := url.Parse(raw)
		if err != nil {
			if shown != raw {
				// The parser's message may quote the user info.
				return loc, usagef("%q: not a valid URL", shown)
			}
			return loc, usagef("%q: %v", shown, errors.Unwrap(err))
		}
		loc.kind, loc.auth = "http", u.User
		u.User = nil
		loc.root = u.String()
	case strings.HasPrefix(raw, "s3://"):
		rest := strings.TrimPrefix(raw, "s3://")
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return loc, usagef("%q: no bucket named", shown)
		}
		if shown != raw {
			return loc, usagef("%q: an s3:// URL takes no user info (S3 credentials come from the AWS configuration: environment, profile, role)", shown)
		}
		loc.kind, loc.bucket, loc.prefix, loc.root = "s3", bucket, prefix, raw
	case strings.HasPrefix(raw, "file://"):
		if shown != raw {
			return loc, usagef("%q: a file:// URL takes no user info", shown)
		}
		loc.kind, loc.root = "dir", strings.TrimPrefix(raw, "file://")
	case strings.Contains(raw, "://"):
		return loc, usagef("%q: unsupported scheme (use http(s)://, s3://, file:// or a directory)", shown)
	case malformedScheme(shown) != "":
		scheme := malformedScheme(shown)
		return loc, usagef("%q: a %s location is written %s://… (did you mean %s://%s?)", shown, scheme, scheme, scheme, strings.TrimLeft(shown[len(scheme)+1:], "/"))
	default:
		loc.kind, loc.root = "dir", raw
	}
	// Split off a start path.
	target := loc.root
	if loc.kind == "s3" {
		target = loc.prefix
	}
	if i := strings.LastIndex(target, "streams/v1/"); i >= 0 && (strings.HasSuffix(target, ".json") || strings.HasSuffix(target, ".sjson")) {
		start := target[i:]
		if !strings.Contains(strings.TrimPrefix(start, "streams/v1/"), "/") {
			loc.start = start
			if loc.kind == "s3" {
				loc.prefix = target[:i]
			} else {
				loc.root = target[:i]
			}
		}
	}
	return loc, nil
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

// looksLikeFilter reports whether a SOURCE or TARGET argument is in fact a filter (key=value,
// key~regex…): what a forgotten argument shifts into its place. A directory whose name has =
// or ~ in it is still reachable as ./name.
func looksLikeFilter(arg string) bool {
	if strings.ContainsAny(arg, "/\\") {
		return false
	}
	_, err := streams.ParseFilter(arg)
	return err == nil
}

// openSource opens a location for reading; client is used for HTTP(S) sources (nil: the default).
func openSource(ctx context.Context, loc location, s3f *s3Flags, mirrors []string, client *http.Client) (store.Source, error) {
	switch loc.kind {
	case "http":
		if client == nil {
			client = httpstore.DefaultClient()
		}
		if err := checkTLS(ctx, "source", loc.root, client); err != nil {
			return nil, err
		}
		return httpstore.New(client, loc.sourceURL(), httpstore.Options{Mirrors: mirrors, UserAgent: "ssmirror/" + version()})
	case "s3":
		return openS3(ctx, loc, s3f)
	default:
		info, err := os.Stat(loc.root)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("source %s is not a directory", loc.root)
		}
		return dirstore.New(loc.root, dirstore.Options{})
	}
}

// openTarget opens a location for writing; a directory target is created if missing.
func openTarget(ctx context.Context, loc location, s3f *s3Flags) (store.Target, error) {
	if loc.start != "" {
		return nil, usagef("the target names a metadata file (%s); name the mirror root", loc.start)
	}
	switch loc.kind {
	case "http":
		return nil, usagef("cannot publish into %s: the target must be a directory or s3://bucket/prefix", loc.root)
	case "s3":
		return openS3(ctx, loc, s3f)
	default:
		root, err := filepath.Abs(loc.root)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		return dirstore.New(root, dirstore.Options{})
	}
}

// sourceURL is an http location's root with its user info put back, for httpstore (which sends
// it as basic auth and never shows it). Never print it.
func (l location) sourceURL() string {
	if l.auth == nil {
		return l.root
	}
	u, err := url.Parse(l.root)
	if err != nil {
		return l.root
	}
	u.User = l.auth
	return u.String()
}

func openS3(ctx context.Context, loc location, f *s3Flags) (store.Target, error) {
	checksum, err := s3store.ParseChecksum(f.uploadChecksum)
	if err != nil {
		return nil, usagef("--upload-checksum: %v", err)
	}
	opts := s3store.Options{
		Checksum:        checksum,
		Endpoint:        f.endpoint,
		Region:          f.region,
		Profile:         f.profile,
		PartSize:        f.partSize,
		PartConcurrency: f.partConcurrency,
		BufferBudget:    f.uploadBuffers,
		RetryLog:        f.retryLog,
	}
	client, err := s3store.NewClient(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("S3 configuration: %w", err)
	}
	if ep := client.Options().BaseEndpoint; ep != nil {
		if err := checkTLS(ctx, "S3 endpoint", *ep, client.Options().HTTPClient); err != nil {
			return nil, err
		}
	}
	if err := checkCredentials(ctx, client); err != nil {
		return nil, err
	}
	return s3store.New(client, loc.bucket, loc.prefix, opts), nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// limitSource caps what the run reads from src at bwlimit bytes a second, all readers together
// (ranged reads included); bwlimit <= 0 leaves src as it is.
func limitSource(src store.Source, rate int64) store.Source {
	if rate <= 0 {
		return src
	}
	return bwlimit.Store(src, bwlimit.New(rate, nil, nil))
}
