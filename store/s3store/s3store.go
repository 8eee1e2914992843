// Package s3store is the S3 backend of store.Target, on aws-sdk-go-v2. It works with AWS S3 and
// S3-compatible stores (MinIO, versitygw, …).
//
// Objects are written so that nothing unverified ever becomes visible: small objects are
// buffered, hashed and checked before a single PutObject; large ones are uploaded as multipart
// uploads that are completed only when the size and sha256 of every byte read match, and aborted
// otherwise (mismatch, read error, cancelled context). The verified sha256 is recorded in the
// object's user metadata (x-amz-meta-sha256), because an ETag is not a content hash.
//
// Payloads are signed as UNSIGNED-PAYLOAD: the SigV4 payload hash would be a second sha256 pass
// over every byte, and Put already hashes everything it sends and checks it before the object
// becomes visible. What the server receives is checked by the server instead: every PutObject
// and UploadPart carries a checksum of its exact bytes (Options.Checksum: CRC32C by default,
// computed in the same pass as the sha256, sent as a header, never as an aws-chunked trailer),
// multipart uploads are completed with every part's checksum and the whole object's, and a
// mismatch is sent again a few times before failing with ErrTransit. Copy and CopyFrom only copy
// objects so uploaded (x-amz-meta-upload-checksum), within a bucket or across buckets of one S3
// service, without their bytes passing through the client (CopyObject, UploadPartCopy).
package s3store

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ssmirror/ssmirror/store"
)

// Sizes and limits of S3 multipart uploads.
const (
	MinPartSize = 5 << 20 // S3's smallest part (except the last)
	MaxPartSize = 5 << 30 // S3's largest part
	// DefaultBufferBudget is Options.BufferBudget when zero: four default parts. Measured with
	// scripts/bench (docs/performance.md): 8 MiB parts and a 32 MiB budget leave room, within
	// 100 MB of peak RSS, for the ranged downloads that a slow link needs.
	DefaultBufferBudget = 32 << 20
	DefaultPartSize     = 8 << 20 // Options.PartSize when zero
	MaxParts            = 10000   // S3's largest part number
	// MaxCopySize is the largest object CopyObject copies in one request.
	MaxCopySize = 5 << 30
	// DefaultPartConcurrency is Options.PartConcurrency when zero.
	DefaultPartConcurrency = 4
	// CopyPartSize is the part size of a multipart copy (UploadPartCopy), used for objects
	// larger than MaxCopySize: no byte passes through the client, so parts cost no memory and
	// fewer, larger ones mean fewer requests. Objects of more than MaxParts × CopyPartSize
	// bytes use larger parts.
	CopyPartSize = 512 << 20
)

// MetadataSHA256 is the user-metadata key (x-amz-meta-sha256) holding the verified sha256.
const MetadataSHA256 = "sha256"

// abortTimeout bounds the clean-up requests sent after a failed upload; they use a context of
// their own because the caller's may be the reason for the failure (cancelled).
const abortTimeout = 30 * time.Second

// Options configures NewClient and New. The zero value is usable.
type Options struct {
	// Endpoint is the S3 endpoint URL ("http://127.0.0.1:9000"); empty: the SDK's own
	// (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, profile, or AWS).
	Endpoint string
	// Region; empty: the SDK's chain, else DefaultRegion.
	Region string
	// Profile is the shared-config profile; empty: the SDK's default (AWS_PROFILE or "default").
	Profile string
	// OwnProfile says Profile is the location's own (s3://bucket/prefix?profile=NAME): the
	// endpoint is the profile's endpoint_url (or AWS's), and the region the profile's when it
	// names one, even where the environment's AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 or
	// AWS_REGION say otherwise (the SDK puts those first: a job's environment meant for one
	// service would send every site to it). Endpoint and Region still come first. (A profile's
	// credentials and ca_bundle already come before the environment's when Profile is set.)
	OwnProfile bool
	// PathStyle forces path-style (true) or virtual-hosted (false) addressing; nil: path style
	// when an endpoint is configured, virtual-hosted for AWS.
	PathStyle *bool
	// CABundle is a PEM file of the CA certificates trusted for the endpoint, replacing
	// AWS_CA_BUNDLE and the profile's ca_bundle; empty: the SDK's own (those, else the system's).
	CABundle string
	// Anonymous sends requests unsigned (a public bucket), whatever credentials the SDK finds.
	Anonymous bool
	// DualStack and FIPS pick AWS's dual-stack (IPv4 and IPv6) or FIPS endpoints; Accelerate
	// its Transfer Acceleration endpoints; DisableHTTPS makes an endpoint the SDK resolves
	// (not Endpoint) plain HTTP. As go-cloud's s3blob URLs dualstack, fips, accelerate and
	// disable_https.
	DualStack, FIPS, Accelerate, DisableHTTPS bool

	// PartSize is the multipart part size; objects up to this size are written with one
	// PutObject. Zero: DefaultPartSize; values below MinPartSize are raised to it, values above
	// MaxPartSize lowered to it. Objects of more than MaxParts × PartSize bytes use larger
	// parts. Each Put holds at most PartConcurrency+1 parts of buffers, all taken from
	// BufferBudget.
	PartSize int64
	// PartConcurrency is the number of parts of one object uploaded at once; zero:
	// DefaultPartConcurrency.
	PartConcurrency int
	// BufferBudget bounds the bytes of part buffers all Puts of this Store hold at once (at
	// least two parts' worth). Zero: DefaultBufferBudget. Peak memory is about this plus a fixed
	// overhead, whatever the number and size of the objects being uploaded. Ignored when
	// Buffers is set.
	BufferBudget int64
	// Buffers, when set, is a part-buffer budget shared with other stores (NewBuffers, created
	// once for all the S3 targets of a run): their Puts together hold at most its budget.
	// Nil: the store has a budget of its own, of BufferBudget bytes.
	Buffers *Buffers

	// Checksum is the checksum every upload request carries for the server to check (see
	// Checksum); empty: DefaultChecksum (CRC32C).
	Checksum Checksum

	// ListStall is how long a listing may go without a page that brings a key it had not seen
	// (or ends it) before it fails; each page's request must be answered within what is left
	// of it. Zero: DefaultListStall.
	ListStall time.Duration

	// RetryLog, when set, is where NewClient's client logs (at Info, message "retrying") each
	// request its retryer sends again, and where the Store logs each upload it sends again
	// after the server found the body changed on the way: the operation, bucket, key, part
	// number, the retry's number and why the attempt before failed. Nil: nothing is logged.
	RetryLog *slog.Logger
}

// Store is an S3 bucket, or the part of it under a prefix, as a store.Target.
type Store struct {
	client      *s3.Client
	bucket      string
	prefix      string // "" or ends with "/"
	opts        Options
	partSize    int64
	concurrency int
	checksum    Checksum
	bufs        *Buffers // the part-buffer budget: its own, or Options.Buffers
	copyLimit   int64    // the largest object copied with one CopyObject: MaxCopySize
	copyPart    int64    // the part size of a multipart copy: CopyPartSize

	transitRetries atomic.Int64 // requests sent again after a checksum mismatch
}

var (
	_ store.Target          = (*Store)(nil)
	_ store.Copier          = (*Store)(nil)
	_ store.CopierFrom      = (*Store)(nil)
	_ store.LeftoverCleaner = (*Store)(nil)
	_ store.Describer       = (*Store)(nil)
)

// New returns the store of the objects under prefix in bucket. Keys are relative to prefix; a
// missing trailing slash on prefix is added ("mirror" and "mirror/" are the same).
func New(client *s3.Client, bucket, prefix string, opts Options) *Store {
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	s := &Store{client: client, bucket: bucket, prefix: prefix, opts: opts, copyLimit: MaxCopySize, copyPart: CopyPartSize}
	s.partSize = normalPartSize(opts.PartSize)
	s.concurrency = opts.PartConcurrency
	if s.concurrency <= 0 {
		s.concurrency = DefaultPartConcurrency
	}
	s.bufs = opts.Buffers
	if s.bufs == nil {
		s.bufs = NewBuffers(opts.BufferBudget, s.partSize)
	}
	s.checksum = opts.Checksum
	if s.checksum == "" {
		s.checksum = DefaultChecksum
	}
	return s
}

// TransitRetries is how many upload requests were sent again because the server found that the
// bytes it received did not match their checksum.
func (s *Store) TransitRetries() int64 { return s.transitRetries.Load() }

// PeakBuffers is the most bytes of part buffers the store's Puts held at once.
// With Options.Buffers, that of every store sharing them.
func (s *Store) PeakBuffers() int64 { return s.bufs.Peak() }

// Describe returns "s3://bucket/prefix".
func (s *Store) Describe() string {
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

var _ store.BufferHolder = (*Store)(nil)

// BufferBudget is the most bytes of part buffers the store's Puts hold at once (with
// Options.Buffers: together with those of every store sharing them).
func (s *Store) BufferBudget() int64 { return s.bufs.Budget() }

// SharedBuffers identifies the budget the store's part buffers come from: stores that return
// the same value share one budget (Options.Buffers), so what they hold together is one
// BufferBudget, not one each.
func (s *Store) SharedBuffers() any { return s.bufs }

// Prefix returns the key prefix ("" or ending in "/").
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) fullKey(key string) string { return s.prefix + key }

// uri names an object in messages.
func (s *Store) uri(key string) string { return "s3://" + s.bucket + "/" + s.prefix + key }

// unsignedPayload signs a request's body as UNSIGNED-PAYLOAD instead of hashing it.
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// isNotFound reports whether err is S3's "no such key" (GET: NoSuchKey; HEAD: 404 without a body).
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		case "NoSuchBucket":
			return false
		}
	}
	return httpStatus(err) == http.StatusNotFound && !isCode(err, "NoSuchBucket")
}

func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// opError names the operation and object and wraps err, adding store.ErrNotExist when S3 said the
// key does not exist.
func (s *Store) opError(op, key string, err error) error {
	if isNotFound(err) {
		return s.failf(op, key, "%w: %w", store.ErrNotExist, err)
	}
	return s.failf(op, key, "%w", err)
}

// failf is the *store.Error of op on key: its message names the object's full s3:// URI too.
// An error that already is a *store.Error for key, given alone ("%w"), is returned as it is.
func (s *Store) failf(op, key, format string, args ...any) error {
	if format == "%w" && len(args) == 1 {
		var e *store.Error
		if err, ok := args[0].(error); ok && errors.As(err, &e) && e.Key == key {
			return err
		}
	}
	return &store.Error{Op: op, Key: key, Err: fmt.Errorf("%s: "+format, append([]any{s.uri(key)}, args...)...)}
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// recordedSHA256 returns the sha256 recorded in user metadata, or "".
func recordedSHA256(md map[string]string) string {
	for k, v := range md {
		if strings.EqualFold(k, MetadataSHA256) {
			v = strings.ToLower(strings.TrimSpace(v))
			if hexSHA256.MatchString(v) {
				return v
			}
		}
	}
	return ""
}

// Stat describes the object at key (HeadObject); SHA256 comes from the recorded metadata.
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	if err := store.ValidKey(key); err != nil {
		return store.Info{}, s.failf("stat", key, "%w", err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.fullKey(key)),
	})
	if err != nil {
		return store.Info{}, s.opError("stat", key, err)
	}
	return store.Info{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified),
		SHA256:  recordedSHA256(out.Metadata),
		ETag:    etagOf(out.ETag),
	}, nil
}

// etagOf is an ETag as S3 sends it ("\"…\"", quotes included) without the quotes, the same
// from every operation.
func etagOf(p *string) string {
	return strings.Trim(aws.ToString(p), `"`)
}

// Open reads the object at key from offset on (GetObject with a Range header when offset > 0).
// Opening at exactly the object's size yields an empty reader.
func (s *Store) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if err := store.ValidKey(key); err != nil {
		return nil, s.failf("open", key, "%w", err)
	}
	if offset < 0 {
		return nil, s.failf("open", key, "negative offset %d", offset)
	}
	in := &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.fullKey(key)),
	}
	if offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if offset > 0 && (isCode(err, "InvalidRange") || httpStatus(err) == http.StatusRequestedRangeNotSatisfiable) {
			// S3 refuses a range starting at the end; that is an empty read, not an error, when
			// the object is exactly offset bytes long.
			info, serr := s.Stat(ctx, key)
			if serr != nil {
				return nil, serr
			}
			if info.Size == offset {
				return io.NopCloser(strings.NewReader("")), nil
			}
			return nil, s.failf("open", key, "at offset %d: object has %d bytes: %w", offset, info.Size, err)
		}
		return nil, s.opError("open", key, err)
	}
	return out.Body, nil
}

// Delete removes the object at key; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := store.ValidKey(key); err != nil {
		return s.failf("delete", key, "%w", err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.fullKey(key)),
	})
	if err != nil && !isNotFound(err) {
		return s.opError("delete", key, err)
	}
	return nil
}

func optString(v string) *string {
	if v == "" {
		return nil
	}
	return aws.String(v)
}

// uploadVerified reports whether user metadata records that the server verified the upload's
// bytes against a checksum (MetadataChecksum).
func uploadVerified(md map[string]string) bool {
	for k, v := range md {
		if strings.EqualFold(k, MetadataChecksum) {
			c, err := ParseChecksum(v)
			return err == nil && c != ChecksumNone && strings.TrimSpace(v) != ""
		}
	}
	return false
}

// copiedSHA256 returns, in hex, the full-object SHA256 the server reports for a copy, or "" when
// it reports none (or only a composite checksum).
func copiedSHA256(r *types.CopyObjectResult) string {
	if r == nil || r.ChecksumSHA256 == nil || r.ChecksumType == types.ChecksumTypeComposite {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(*r.ChecksumSHA256)
	if err != nil || len(b) != 32 {
		return ""
	}
	return hex.EncodeToString(b)
}

// copySource is the x-amz-copy-source value: bucket/key with the key URL-escaped per segment.
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return bucket + "/" + strings.Join(segs, "/")
}

// CleanLeftovers aborts the multipart uploads under the store's prefix that opts selects
// (store.LeftoverCleaner): the leftovers of runs that were killed before they could abort them
// (they are invisible but cost storage). opts.Mine is given each upload's key relative to the
// prefix. It returns how many it aborted.
func (s *Store) CleanLeftovers(ctx context.Context, opts store.LeftoverOptions) (int, error) {
	cutoff := time.Now().Add(-opts.OlderThan)
	// The prefix is applied here rather than sent: MinIO lists the uploads of one exact key
	// when given a prefix, not those of every key under it.
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket)}
	g := s.newListGuard("ListMultipartUploads")
	n := 0
	for {
		pctx, cancel := g.pageContext(ctx)
		page, err := s.client.ListMultipartUploads(pctx, in)
		cancel()
		if err != nil {
			return n, fmt.Errorf("listing incomplete uploads in %s: %w", s.Describe(), g.failed(ctx, pctx, err))
		}
		for _, u := range page.Uploads {
			g.saw(aws.ToString(u.Key) + "\x00" + aws.ToString(u.UploadId))
			key, ok := strings.CutPrefix(aws.ToString(u.Key), s.prefix)
			if !ok || opts.Mine != nil && !opts.Mine(key) {
				continue
			}
			if opts.OlderThan > 0 && (u.Initiated == nil || !u.Initiated.Before(cutoff)) {
				continue
			}
			_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket:   aws.String(s.bucket),
				Key:      u.Key,
				UploadId: u.UploadId,
			})
			if err != nil && !isCode(err, "NoSuchUpload") {
				return n, fmt.Errorf("aborting upload %s of s3://%s/%s: %w", aws.ToString(u.UploadId), s.bucket, aws.ToString(u.Key), err)
			}
			if err == nil {
				n++
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return n, nil
		}
		if err := g.next(aws.ToString(page.NextKeyMarker) + "\x00" + aws.ToString(page.NextUploadIdMarker)); err != nil {
			return n, fmt.Errorf("listing incomplete uploads in %s: %w", s.Describe(), err)
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// ifNoneMatch makes a PutObject conditional on there being no object at its key.
func ifNoneMatch(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }
