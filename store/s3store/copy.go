package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/ssmirror/ssmirror/store"
)

// ErrOtherService is wrapped by the error of a CopyFrom whose source is not a bucket of the same
// S3 service reached with the same credentials (CanCopyFrom is false): nothing was sent.
var ErrOtherService = errors.New("the source is not on the same S3 service with the same credentials")

// credentialsTimeout bounds CanCopyFrom's look at the two clients' credentials (normally cached
// by the SDK already: the first request of either client fetched them).
const credentialsTimeout = 10 * time.Second

// CanCopyFrom reports whether src (or a store it wraps, found with store.As) is an S3 store this
// one can copy from on the server (store.CopierFrom): the same client, or clients that reach
// the same endpoint (compared as a normalised URL; AWS's own when neither names one) in the same
// region and sign with the same access key. Anything else is false: another server (two
// MinIOs answer at two endpoints), another region, other or anonymous credentials, or
// credentials that cannot be read. False is always safe: the caller then uploads the content
// itself.
//
// Comparing credentials may ask each client's credentials provider for them (cached by the SDK
// after the first request), bounded by a timeout of its own since the method has no context.
func (s *Store) CanCopyFrom(src store.Target) bool {
	from, ok := store.As[*Store](src)
	if !ok || from == nil || s.client == nil || from.client == nil {
		return false
	}
	return sameService(s.client, from.client)
}

// sameService reports whether requests signed by a would reach the service b's reach, as the
// same principal.
func sameService(a, b *s3.Client) bool {
	if a == b {
		return true
	}
	ao, bo := a.Options(), b.Options()
	if ao.Region != bo.Region {
		return false
	}
	ea, oka := normalEndpoint(ao.BaseEndpoint)
	eb, okb := normalEndpoint(bo.BaseEndpoint)
	if !oka || !okb || ea != eb {
		return false
	}
	if ao.Credentials == nil || bo.Credentials == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), credentialsTimeout)
	defer cancel()
	ca, err := ao.Credentials.Retrieve(ctx)
	if err != nil {
		return false
	}
	cb, err := bo.Credentials.Retrieve(ctx)
	if err != nil {
		return false
	}
	return ca.AccessKeyID != "" && ca.AccessKeyID == cb.AccessKeyID && ca.SecretAccessKey == cb.SecretAccessKey
}

// normalEndpoint is an endpoint URL in one spelling (scheme and host in lower case, no trailing
// slash), "" for none (the SDK's AWS endpoint for the region); false when it does not parse.
func normalEndpoint(ep *string) (string, bool) {
	if ep == nil || *ep == "" {
		return "", true
	}
	u, err := url.Parse(*ep)
	if err != nil || u.Host == "" {
		return "", false
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + strings.TrimSuffix(u.EscapedPath(), "/"), true
}

// Copy copies srcKey to dstKey on the server, within the store's bucket: CopyFrom from the store
// itself (see there).
func (s *Store) Copy(ctx context.Context, dstKey, srcKey string, opts store.PutOptions) (store.Info, error) {
	return s.copyFrom(ctx, dstKey, s, srcKey, opts)
}

// CopyFrom copies src's object at srcKey to dstKey on the server (store.CopierFrom): from another
// bucket (and prefix) of the same S3 service, or from this one, without the bytes passing through
// the client. src must be one CanCopyFrom accepts; otherwise CopyFrom fails with ErrOtherService
// and sends nothing.
//
// The source is checked first (HeadObject, with src's client) against opts.Size and opts.SHA256
// (from its recorded metadata; a source without a recorded sha256 cannot be checked and fails
// with store.ErrChecksum when opts.SHA256 is set), and every copy request is conditional on the
// source's ETag (x-amz-copy-source-if-match), so what is copied is what was checked: a source
// replaced meanwhile fails with store.ErrPrecondition, one deleted meanwhile with
// store.ErrNotExist, and nothing is written at dstKey. The recorded sha256 and the rest of the
// source's metadata are carried over; ContentType and CacheControl are replaced when given in
// opts, kept otherwise.
//
// A recorded sha256 is only what the uploader computed of the bytes it read, not of what the
// server stored; so the copy is verified twice over. The source must have been uploaded with a
// checksum the server verified (x-amz-meta-upload-checksum, written by Put and Swap unless the
// store's Checksum is none): an object without it, written by an older version or another tool,
// may hold bytes changed in transit, and is refused with store.ErrChecksum (the caller uploads
// the content instead). And a copy in one request asks the server for the SHA256 of the bytes it
// copies (x-amz-checksum-algorithm: SHA256): a server that answers with it (AWS, versitygw;
// MinIO ignores the request) has it compared with the expected sha256, and a mismatch deletes
// the copy and fails with store.ErrChecksum.
//
// Objects up to MaxCopySize are copied with one CopyObject; larger ones with a multipart upload
// whose parts are UploadPartCopy ranges of the source (CopyPartSize each, PartConcurrency at
// once), completed only when every part was copied from the checked version, aborted on any
// failure or cancellation (so no incomplete upload is left), and checked once complete: its size
// and recorded sha256 must be the source's, or it is deleted and the copy fails with
// store.ErrChecksum.
func (s *Store) CopyFrom(ctx context.Context, dstKey string, src store.Target, srcKey string, opts store.PutOptions) (store.Info, error) {
	from, ok := store.As[*Store](src)
	if !ok || !s.CanCopyFrom(src) {
		where := fmt.Sprintf("%T", src)
		if d, ok := store.As[store.Describer](src); ok {
			where = d.Describe()
		}
		return store.Info{}, s.failf("copy", dstKey, "from %s of %s: %w", srcKey, where, ErrOtherService)
	}
	return s.copyFrom(ctx, dstKey, from, srcKey, opts)
}

// copyFrom is Copy and CopyFrom: src is s itself or a store CanCopyFrom accepted.
func (s *Store) copyFrom(ctx context.Context, dstKey string, src *Store, srcKey string, opts store.PutOptions) (store.Info, error) {
	if err := store.ValidKey(dstKey); err != nil {
		return store.Info{}, s.failf("copy", dstKey, "%w", err)
	}
	if err := store.ValidKey(srcKey); err != nil {
		return store.Info{}, s.failf("copy", dstKey, "from %s in %s: %w", srcKey, src.Describe(), err)
	}
	if opts.SHA256 != "" && !hexSHA256.MatchString(strings.ToLower(opts.SHA256)) {
		return store.Info{}, s.failf("copy", dstKey, "expected sha256 %q is not 64 hex digits", opts.SHA256)
	}
	opts.SHA256 = strings.ToLower(opts.SHA256)
	from := src.uri(srcKey)
	head, err := src.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(src.bucket),
		Key:    aws.String(src.fullKey(srcKey)),
	})
	if err != nil {
		if isNotFound(err) {
			return store.Info{}, s.failf("copy", dstKey, "from %s: %w: %w", from, store.ErrNotExist, err)
		}
		return store.Info{}, s.failf("copy", dstKey, "from %s: reading the source's metadata: %w", from, err)
	}
	size := aws.ToInt64(head.ContentLength)
	sum := recordedSHA256(head.Metadata)
	if opts.Size >= 0 && size != opts.Size {
		return store.Info{}, s.failf("copy", dstKey, "from %s: %w: size %d, expected %d", from, store.ErrChecksum, size, opts.Size)
	}
	if opts.SHA256 != "" && sum != opts.SHA256 {
		got := sum
		if got == "" {
			got = "not recorded"
		}
		return store.Info{}, s.failf("copy", dstKey, "from %s: %w: sha256 %s, expected %s", from, store.ErrChecksum, got, opts.SHA256)
	}
	if s.checksum != ChecksumNone && !uploadVerified(head.Metadata) {
		return store.Info{}, s.failf("copy", dstKey, "from %s: %w: the source was not uploaded with a checksum the server verified (no x-amz-meta-%s); its bytes are not trusted for copying",
			from, store.ErrChecksum, MetadataChecksum)
	}
	if head.ETag == nil || etagOf(head.ETag) == "" {
		return store.Info{}, s.failf("copy", dstKey, "from %s: the server gave no ETag for the source, so the copy cannot be made conditional on the version checked", from)
	}
	want := opts.SHA256
	if want == "" {
		want = sum
	}
	if size > s.copyLimit {
		return s.copyMultipart(ctx, dstKey, src, srcKey, head, want, opts)
	}
	in := &s3.CopyObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(s.fullKey(dstKey)),
		CopySource:        aws.String(copySource(src.bucket, src.fullKey(srcKey))),
		CopySourceIfMatch: head.ETag,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}
	if opts.ContentType != "" || opts.CacheControl != "" {
		in.MetadataDirective = types.MetadataDirectiveReplace
		in.Metadata = head.Metadata
		in.ContentType, in.CacheControl = replaced(head, opts)
		in.ContentEncoding = head.ContentEncoding
		in.ContentDisposition = head.ContentDisposition
		in.ContentLanguage = head.ContentLanguage
	}
	out, err := s.client.CopyObject(ctx, in)
	if err != nil {
		return store.Info{}, s.copyError(dstKey, from, "", err)
	}
	if got := copiedSHA256(out.CopyObjectResult); got != "" && want != "" && got != want {
		// The copy holds other bytes than the catalogue lists: remove it before anyone lists it.
		return store.Info{}, s.removeBadCopy(ctx, dstKey, s.failf("copy", dstKey, "from %s: %w: the server computed sha256 %s of the copied bytes, expected %s", from, store.ErrChecksum, got, want))
	}
	info := store.Info{Key: dstKey, Size: size, SHA256: sum}
	if out.CopyObjectResult != nil {
		info.ModTime = aws.ToTime(out.CopyObjectResult.LastModified)
		info.ETag = etagOf(out.CopyObjectResult.ETag)
	}
	if info.ModTime.IsZero() {
		info.ModTime = serverTime(out.ResultMetadata)
	}
	return info, nil
}

// replaced is the Content-Type and Cache-Control of a copy of the object head describes: opts'
// where given, the source's otherwise.
func replaced(head *s3.HeadObjectOutput, opts store.PutOptions) (contentType, cacheControl *string) {
	contentType, cacheControl = head.ContentType, head.CacheControl
	if opts.ContentType != "" {
		contentType = aws.String(opts.ContentType)
	}
	if opts.CacheControl != "" {
		cacheControl = aws.String(opts.CacheControl)
	}
	return contentType, cacheControl
}

// copyError is the error of a copy request from the source from: a source replaced since it was
// checked (the copy was conditional on its ETag) wraps store.ErrPrecondition, a source deleted
// since store.ErrNotExist. what names the request ("" for CopyObject).
func (s *Store) copyError(dstKey, from, what string, err error) error {
	if what != "" {
		what += ": "
	}
	switch {
	case isCode(err, "PreconditionFailed") || httpStatus(err) == http.StatusPreconditionFailed:
		return s.failf("copy", dstKey, "from %s: %s%w: the source was replaced after it was checked: %w", from, what, store.ErrPrecondition, err)
	case isNotFound(err):
		return s.failf("copy", dstKey, "from %s: %s%w: %w", from, what, store.ErrNotExist, err)
	}
	return s.failf("copy", dstKey, "from %s: %s%w", from, what, err)
}

// removeBadCopy deletes the object at dstKey that a copy left and that failed its check, and
// returns err (with the deletion's failure, if any).
func (s *Store) removeBadCopy(ctx context.Context, dstKey string, err error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if derr := s.Delete(dctx, dstKey); derr != nil {
		return fmt.Errorf("%w (and removing the bad copy failed: %w)", err, derr)
	}
	return err
}

// copyMultipart copies the object head describes, src's srcKey, to dstKey with a multipart upload
// of UploadPartCopy parts, each conditional on the source's ETag. want is the sha256 the copy
// must record ("" when neither the caller nor the source knows one).
func (s *Store) copyMultipart(ctx context.Context, dstKey string, src *Store, srcKey string, head *s3.HeadObjectOutput, want string, opts store.PutOptions) (info store.Info, err error) {
	from := src.uri(srcKey)
	size := aws.ToInt64(head.ContentLength)
	if size > MaxObjectSize {
		return store.Info{}, s.failf("copy", dstKey, "from %s: %d bytes is more than S3's largest object (%d bytes)", from, size, int64(MaxObjectSize))
	}
	partSize := partSizeOf(s.copyPart, size)
	nparts := int((size + partSize - 1) / partSize)
	if err := ctx.Err(); err != nil {
		return store.Info{}, s.failf("copy", dstKey, "from %s: %w", from, err)
	}
	cin := &s3.CreateMultipartUploadInput{
		Bucket:             aws.String(s.bucket),
		Key:                aws.String(s.fullKey(dstKey)),
		Metadata:           head.Metadata,
		ContentEncoding:    head.ContentEncoding,
		ContentDisposition: head.ContentDisposition,
		ContentLanguage:    head.ContentLanguage,
	}
	cin.ContentType, cin.CacheControl = replaced(head, opts)
	created, err := s.client.CreateMultipartUpload(ctx, cin)
	if err != nil {
		return store.Info{}, s.failf("copy", dstKey, "from %s: starting multipart copy: %w", from, err)
	}
	uploadID := created.UploadId
	completed, interrupted := false, false
	defer func() {
		if completed {
			return
		}
		if aerr := s.abortUpload(ctx, dstKey, uploadID, interrupted); aerr != nil {
			err = fmt.Errorf("%w (and %w)", err, aerr)
		}
	}()

	source := aws.String(copySource(src.bucket, src.fullKey(srcKey)))
	parts := make([]types.CompletedPart, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.concurrency)
	for i := range nparts {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			num := int32(i + 1)
			first := int64(i) * partSize
			last := min(first+partSize, size) - 1
			out, err := s.client.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:            aws.String(s.bucket),
				Key:               aws.String(s.fullKey(dstKey)),
				UploadId:          uploadID,
				PartNumber:        aws.Int32(num),
				CopySource:        source,
				CopySourceIfMatch: head.ETag,
				CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
			})
			if err != nil {
				return s.copyError(dstKey, from, fmt.Sprintf("copying part %d (bytes %d-%d)", num, first, last), err)
			}
			if out.CopyPartResult == nil || out.CopyPartResult.ETag == nil {
				return s.failf("copy", dstKey, "from %s: copying part %d: the server gave no ETag for the part", from, num)
			}
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.CopyPartResult.ETag}
			return nil
		})
	}
	werr := g.Wait()
	interrupted = werr != nil || ctx.Err() != nil
	switch {
	case ctx.Err() != nil:
		return store.Info{}, s.failf("copy", dstKey, "from %s: %w", from, ctx.Err())
	case werr != nil:
		return store.Info{}, werr
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(s.fullKey(dstKey)),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return store.Info{}, s.failf("copy", dstKey, "from %s: completing multipart copy: %w", from, err)
	}
	completed = true

	// The parts were each copied from the version checked; check the whole once more: its size
	// and the sha256 it records must be the source's.
	got, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.fullKey(dstKey)),
	})
	if err != nil {
		return store.Info{}, s.removeBadCopy(ctx, dstKey, s.failf("copy", dstKey, "from %s: checking the completed copy: %w", from, err))
	}
	if n := aws.ToInt64(got.ContentLength); n != size {
		return store.Info{}, s.removeBadCopy(ctx, dstKey, s.failf("copy", dstKey, "from %s: %w: the copy has %d bytes, the source %d", from, store.ErrChecksum, n, size))
	}
	if rec := recordedSHA256(got.Metadata); want != "" && rec != want {
		return store.Info{}, s.removeBadCopy(ctx, dstKey, s.failf("copy", dstKey, "from %s: %w: the copy records sha256 %q, expected %s", from, store.ErrChecksum, rec, want))
	}
	return store.Info{
		Key:     dstKey,
		Size:    size,
		SHA256:  recordedSHA256(got.Metadata),
		ModTime: aws.ToTime(got.LastModified),
		ETag:    etagOf(got.ETag),
	}, nil
}
