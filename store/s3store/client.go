package s3store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Retry settings of the clients NewClient builds.
const (
	// RetryMaxAttempts is how many times one S3 request is tried in all.
	RetryMaxAttempts = 8
	// RetryMaxBackoff caps the jittered exponential pause between attempts.
	RetryMaxBackoff = 5 * time.Second
)

// DefaultRegion is used when neither Options.Region nor the SDK's configuration chain names one.
// S3-compatible stores accept any region; AWS redirects to the bucket's own.
const DefaultRegion = "us-east-1"

// NewClient builds an S3 client from the AWS SDK's default configuration chain (environment,
// shared config and credentials files, opts.Profile, web identity, IMDS), so nothing about
// credentials is handled here. The endpoint is opts.Endpoint, or what the SDK itself reads from
// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / the profile. Path-style addressing is used when an
// endpoint is set, unless opts.PathStyle says otherwise. Checksums are computed and validated
// only when an operation requires them: the SDK's default CRC32 checksums break many
// S3-compatible stores, and Put verifies sha256 itself. AWS_CA_BUNDLE (and a profile's
// ca_bundle) is honoured by the SDK, unless opts.CABundle names another.
// With opts.RetryLog, each request the SDK retries is logged there.
func NewClient(ctx context.Context, opts Options) (*s3.Client, error) {
	var load []func(*config.LoadOptions) error
	if opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.CABundle != "" {
		pem, err := os.ReadFile(opts.CABundle)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		load = append(load, config.WithCustomCABundle(bytes.NewReader(pem)))
	}
	if opts.Anonymous {
		load = append(load, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	}
	if opts.DualStack {
		load = append(load, config.WithUseDualStackEndpoint(aws.DualStackEndpointStateEnabled))
	}
	if opts.FIPS {
		load = append(load, config.WithUseFIPSEndpoint(aws.FIPSEndpointStateEnabled))
	}
	load = append(load,
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	)
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	own, err := ownProfileEndpoint(ctx, &cfg, opts)
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		switch {
		case opts.Endpoint != "":
			o.BaseEndpoint = aws.String(opts.Endpoint)
		case own != nil && *own != "":
			o.BaseEndpoint = own
		case own != nil:
			o.BaseEndpoint = nil // the profile names none: AWS, whatever the environment says
		}
		// o.BaseEndpoint already holds an endpoint configured through the environment or the
		// shared config (resolved by NewFromConfig before the option functions run).
		switch {
		case opts.PathStyle != nil:
			o.UsePathStyle = *opts.PathStyle
		case o.BaseEndpoint != nil && *o.BaseEndpoint != "":
			o.UsePathStyle = true
		}
		o.UseAccelerate = opts.Accelerate
		if opts.DisableHTTPS {
			o.EndpointOptions.DisableHTTPS = true
		}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		// The SDK would otherwise log a warning for each response without a checksum; a
		// library does not print.
		o.DisableLogOutputChecksumValidationSkipped = true
		o.Retryer = newRetryer(cfg.RetryMaxAttempts)
		if opts.RetryLog != nil {
			o.APIOptions = append(o.APIOptions, addRetryLog(opts.RetryLog))
		}
	})
	return client, nil
}

// sharedConfigOf is the shared config (the profile) cfg was loaded from, if any.
func sharedConfigOf(cfg aws.Config) *config.SharedConfig {
	for _, src := range cfg.ConfigSources {
		if c, ok := src.(config.SharedConfig); ok {
			return &c
		}
	}
	return nil
}

// ownProfileEndpoint applies a location's own profile (opts.OwnProfile) over the environment:
// its region (when it names one and opts.Region does not) goes into cfg, and it returns the
// profile's endpoint for S3 ("" for none: AWS) when opts.Endpoint does not name one, nil when
// the SDK's own resolution stands.
func ownProfileEndpoint(ctx context.Context, cfg *aws.Config, opts Options) (*string, error) {
	if !opts.OwnProfile || opts.Profile == "" {
		return nil, nil
	}
	sc := sharedConfigOf(*cfg)
	if sc == nil {
		return nil, nil
	}
	if opts.Region == "" && sc.Region != "" {
		cfg.Region = sc.Region
	}
	if opts.Endpoint != "" {
		return nil, nil
	}
	ep := sc.BaseEndpoint
	if s3ep, ok, err := sc.GetServiceBaseEndpoint(ctx, s3.ServiceID); err != nil {
		return nil, fmt.Errorf("profile %s: %w", opts.Profile, err)
	} else if ok {
		ep = s3ep
	}
	return &ep, nil
}

// newRetryer retries what the SDK's standard retryer deems transient (connection errors, 500,
// 502, 503 and 504 answers, throttling codes such as SlowDown, request timeouts) up to
// RetryMaxAttempts times with jittered exponential backoff. Request bodies are seekable buffers
// (whole small objects, one part at a time), so every attempt resends them. The client-side
// retry quota is off: a mirror run is one client, bounded per request by RetryMaxAttempts, and a
// long run through a throttling store would otherwise exhaust the quota and fail requests that
// a pause would have let through. maxAttempts, when positive (AWS_MAX_ATTEMPTS, max_attempts in the shared config), overrides
// RetryMaxAttempts.
func newRetryer(maxAttempts int) aws.Retryer {
	if maxAttempts <= 0 {
		maxAttempts = RetryMaxAttempts
	}
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = RetryMaxBackoff
		o.RateLimiter = ratelimit.None
	})
}
