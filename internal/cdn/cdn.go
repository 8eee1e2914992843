// Package cdn invalidates a CloudFront distribution's cached copies of the metadata a publish
// has just written, so clients behind the CDN see a new catalogue at once rather than when the
// edges' copies expire (Cache-Control max-age of the metadata, 5 minutes by default).
//
// Only metadata is invalidated: content paths never change their bytes (a new version is a new
// path), so cached content is never stale.
package cdn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
)

// DefaultRegion signs CloudFront requests when the SDK's configuration names no region.
// CloudFront is a global service whose API lives in us-east-1.
const DefaultRegion = "us-east-1"

// NewClient builds a CloudFront client from the AWS SDK's default configuration chain
// (environment, shared config and credentials files, profile, web identity, instance or Lambda
// role), with the named shared-config profile when profile is not empty. The SDK itself honours
// AWS_ENDPOINT_URL_CLOUDFRONT.
func NewClient(ctx context.Context, profile string) (*cloudfront.Client, error) {
	var load []func(*config.LoadOptions) error
	if profile != "" {
		load = append(load, config.WithSharedConfigProfile(profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration for CloudFront: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return cloudfront.NewFromConfig(cfg), nil
}

// DefaultPathPrefix is the path under which a CDN in front of a bucket sees the objects of the
// mirror at prefix in that bucket: "/" followed by the prefix, with one trailing slash
// ("maas/stable" gives "/maas/stable/", "" gives "/"). It assumes the distribution's origin is
// the bucket itself, with no origin path.
func DefaultPathPrefix(prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return "/"
	}
	return "/" + prefix + "/"
}

// Paths returns the invalidation paths covering the metadata keys written (relative to the
// mirror root, as sync.Report.MetadataWritten lists them) as the CDN sees them under
// pathPrefix: one wildcard path per directory holding a written key
// ("/maas/stable/streams/v1/*"), sorted. A wildcard matches however the client encodes the
// characters of product file names (":" in com.ubuntu.maas:stable:v3:download.json), and
// CloudFront bills it as a single path. No keys give no paths.
func Paths(pathPrefix string, keys []string) []string {
	pathPrefix = "/" + strings.Trim(pathPrefix, "/")
	var out []string
	for _, k := range keys {
		p := path.Join(pathPrefix, path.Dir(strings.TrimPrefix(k, "/")), "*")
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Invalidate asks CloudFront to invalidate paths in the distribution and returns the
// invalidation's id. It does not wait for the invalidation to complete (CloudFront usually
// finishes within a minute or two). Each call sends a new caller reference, so two calls make
// two invalidations; the SDK's own retries of one call resend the same reference, which
// CloudFront deduplicates.
func Invalidate(ctx context.Context, client *cloudfront.Client, distributionID string, paths []string) (id string, err error) {
	if distributionID == "" {
		return "", errors.New("CloudFront invalidation: no distribution id")
	}
	if len(paths) == 0 {
		return "", fmt.Errorf("CloudFront invalidation of distribution %s: no paths", distributionID)
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			return "", fmt.Errorf("CloudFront invalidation of distribution %s: path %q does not start with /", distributionID, p)
		}
	}
	ref, err := callerReference(time.Now())
	if err != nil {
		return "", fmt.Errorf("CloudFront invalidation of distribution %s: %w", distributionID, err)
	}
	out, err := client.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{
		DistributionId: aws.String(distributionID),
		InvalidationBatch: &types.InvalidationBatch{
			CallerReference: aws.String(ref),
			Paths:           &types.Paths{Quantity: aws.Int32(int32(len(paths))), Items: paths},
		},
	})
	if err != nil {
		return "", fmt.Errorf("CloudFront invalidation of %s in distribution %s: %w", strings.Join(paths, " "), distributionID, err)
	}
	if out.Invalidation == nil || aws.ToString(out.Invalidation.Id) == "" {
		return "", fmt.Errorf("CloudFront invalidation of distribution %s: the answer holds no invalidation id", distributionID)
	}
	return aws.ToString(out.Invalidation.Id), nil
}

// callerReference makes a reference unique to this call: the time and 8 random bytes.
func callerReference(now time.Time) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "ssmirror-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}
