package s3store

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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
// S3-compatible stores, and Put verifies sha256 itself. AWS_CA_BUNDLE is honoured by the SDK.
func NewClient(ctx context.Context, opts Options) (*s3.Client, error) {
	var load []func(*config.LoadOptions) error
	if opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	load = append(load,
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	)
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		// o.BaseEndpoint already holds an endpoint configured through the environment or the
		// shared config (resolved by NewFromConfig before the option functions run).
		switch {
		case opts.PathStyle != nil:
			o.UsePathStyle = *opts.PathStyle
		case o.BaseEndpoint != nil && *o.BaseEndpoint != "":
			o.UsePathStyle = true
		}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		// The SDK would otherwise log a warning for each response without a checksum; a
		// library does not print.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return client, nil
}
