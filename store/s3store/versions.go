package s3store

import (
	"context"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ssmirror/ssmirror/store"
)

var (
	_ store.VersioningReader = (*Store)(nil)
	_ store.VersionDeleter   = (*Store)(nil)
)

// Versioning says whether the bucket keeps deleted objects' bytes (store.VersioningReader): its
// versioning status (GetBucketVersioning) and whether it has object lock
// (GetObjectLockConfiguration; a server that does not implement it has none).
func (s *Store) Versioning(ctx context.Context) (store.Versioning, error) {
	var v store.Versioning
	out, err := s.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(s.bucket)})
	if err != nil {
		return v, fmt.Errorf("reading the versioning of s3://%s: %w", s.bucket, err)
	}
	v.Status = string(out.Status)
	lock, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(s.bucket)})
	switch {
	case err == nil:
		v.ObjectLock = lock.ObjectLockConfiguration != nil && lock.ObjectLockConfiguration.ObjectLockEnabled == types.ObjectLockEnabledEnabled
	case isCode(err, "ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound", "NoSuchObjectLockConfiguration", "NotImplemented"),
		httpStatus(err) == http.StatusNotFound, httpStatus(err) == http.StatusNotImplemented:
	default:
		return v, fmt.Errorf("reading the object lock configuration of s3://%s: %w", s.bucket, err)
	}
	return v, nil
}

// Versions lists the versions and delete markers of exactly key (store.VersionDeleter).
func (s *Store) Versions(ctx context.Context, key string) ([]store.ObjectVersion, error) {
	if err := store.ValidKey(key); err != nil {
		return nil, s.failf("versions", key, "%w", err)
	}
	full := s.fullKey(key)
	in := &s3.ListObjectVersionsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(full)}
	g := s.newListGuard("ListObjectVersions")
	var out []store.ObjectVersion
	for {
		pctx, cancel := g.pageContext(ctx)
		page, err := s.client.ListObjectVersions(pctx, in)
		cancel()
		if err != nil {
			return nil, s.failf("versions", key, "%w", g.failed(ctx, pctx, err))
		}
		for _, v := range page.Versions {
			g.saw(aws.ToString(v.Key) + "\x00" + aws.ToString(v.VersionId))
			if aws.ToString(v.Key) == full {
				out = append(out, store.ObjectVersion{ID: aws.ToString(v.VersionId), ETag: etagOf(v.ETag), Size: aws.ToInt64(v.Size), Latest: aws.ToBool(v.IsLatest)})
			}
		}
		for _, m := range page.DeleteMarkers {
			g.saw(aws.ToString(m.Key) + "\x00" + aws.ToString(m.VersionId))
			if aws.ToString(m.Key) == full {
				out = append(out, store.ObjectVersion{ID: aws.ToString(m.VersionId), DeleteMarker: true, Latest: aws.ToBool(m.IsLatest)})
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		if err := g.next(aws.ToString(page.NextKeyMarker) + "\x00" + aws.ToString(page.NextVersionIdMarker)); err != nil {
			return nil, s.failf("versions", key, "%w", err)
		}
		in.KeyMarker, in.VersionIdMarker = page.NextKeyMarker, page.NextVersionIdMarker
	}
}

// DeleteVersion deletes one version (or delete marker) of key for good (store.VersionDeleter).
func (s *Store) DeleteVersion(ctx context.Context, key, id string) error {
	if err := store.ValidKey(key); err != nil {
		return s.failf("delete version", key, "%w", err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(s.fullKey(key)), VersionId: aws.String(id),
	})
	if err != nil {
		return s.failf("delete version", key, "version %s: %w", id, err)
	}
	return nil
}
