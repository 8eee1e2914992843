package s3store

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ssmirror/ssmirror/store"
)

// ReadTagged reads the object at key (GetObject) with its ETag as the tag.
func (s *Store) ReadTagged(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	if err := store.ValidKey(key); err != nil {
		return nil, "", s.failf("read", key, "%w", err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.fullKey(key)),
	})
	if err != nil {
		return nil, "", s.opError("read", key, err)
	}
	defer out.Body.Close()
	r := io.Reader(out.Body)
	if limit > 0 {
		r = io.LimitReader(out.Body, limit+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, "", s.failf("read", key, "%w", err)
	}
	if limit > 0 && int64(len(data)) > limit {
		return nil, "", s.failf("read", key, "more than the %d bytes expected", limit)
	}
	tag := etagOf(out.ETag)
	if tag == "" {
		return nil, "", s.failf("read", key, "the server sent no ETag, so the object cannot be swapped")
	}
	return data, tag, nil
}

// Swap writes data at key with one PutObject conditional on the ETag tag (If-Match), or on there
// being no object (If-None-Match: *) when tag is "". A 412, a 409 ConditionalRequestConflict (a
// concurrent conditional write) and a 404 to If-Match (the object was deleted) fail with
// store.ErrPrecondition. The body carries the store's upload checksum (Options.Checksum), so the
// server checks the bytes it stores, and a body changed in transit is sent again (putObject).
func (s *Store) Swap(ctx context.Context, key string, data []byte, tag string, opts store.PutOptions) (string, error) {
	if err := store.ValidKey(key); err != nil {
		return "", s.failf("swap", key, "%w", err)
	}
	opts.Size = int64(len(data))
	sum, err := s.verifyBytes("swap", key, data, opts)
	if err != nil {
		return "", err
	}
	cond := ifNoneMatch
	if tag != "" {
		cond = func(in *s3.PutObjectInput) { in.IfMatch = aws.String(`"` + strings.Trim(tag, `"`) + `"`) }
	}
	_, newTag, err := s.putObject(ctx, key, data, sum, s.checksum.sumOf(data), opts, cond)
	if err != nil {
		if isPrecondition(err) || (tag != "" && isNotFound(err)) {
			return "", s.failf("swap", key, "%w: %w", store.ErrPrecondition, err)
		}
		return "", s.failf("swap", key, "%w", err)
	}
	if newTag == "" {
		return "", s.failf("swap", key, "written, but the server sent no ETag")
	}
	return newTag, nil
}

// isPrecondition reports whether err is S3's answer to a failed conditional write.
func isPrecondition(err error) bool {
	return httpStatus(err) == http.StatusPreconditionFailed || httpStatus(err) == http.StatusConflict ||
		isCode(err, "PreconditionFailed", "ConditionalRequestConflict")
}
