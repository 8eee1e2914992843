package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/retry"
)

// smallObject is the size below which a known-size object gets a buffer of its own size instead
// of a pooled part buffer.
const smallObject = 1 << 20

// abortGrace is how long the parts in flight of a cancelled Put may take to finish before their
// requests are cut too.
const abortGrace = 30 * time.Second

// Put writes the object at key from r, verifying opts.Size and opts.SHA256 as the bytes pass.
//
// Up to PartSize bytes (or an unknown size that turns out to fit) the object is read into memory,
// checked, and sent with one PutObject; a mismatch sends nothing. Larger objects go through a
// multipart upload with PartConcurrency parts in flight, completed only when the whole object
// checks out, and aborted on any failure, so no object and no incomplete upload is left. A
// cancelled multipart Put returns once the parts already in flight have been answered (bounded
// by abortGrace), so that the abort is final.
//
// The sha256 is recorded as x-amz-meta-sha256. For a multipart upload the metadata is fixed when
// the upload starts: opts.SHA256 is recorded then (it is true once Complete happens, since Complete
// happens only when the computed hash equals it). Without opts.SHA256, a multipart object is
// rewritten in place with CopyObject (server side) to record the computed hash; above
// MaxCopySize that is impossible and the object is left without a recorded sha256 (Stat reports
// "").
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts store.PutOptions) (store.Info, error) {
	if err := store.ValidKey(key); err != nil {
		return store.Info{}, s.failf("put", key, "%w", err)
	}
	if opts.SHA256 != "" && !hexSHA256.MatchString(strings.ToLower(opts.SHA256)) {
		return store.Info{}, s.failf("put", key, "expected sha256 %q is not 64 hex digits", opts.SHA256)
	}
	opts.SHA256 = strings.ToLower(opts.SHA256)
	if err := ctx.Err(); err != nil {
		return store.Info{}, s.failf("put", key, "%w", err)
	}
	v := store.NewVerifier(key, r, opts)

	partSize, err := s.partSizeFor(key, opts.Size)
	if err != nil {
		return store.Info{}, err
	}
	if cr, ok := r.(store.ChunkReader); ok {
		return s.putChunks(ctx, key, cr, v, opts, partSize)
	}

	// Small known size: one buffer, one request.
	if opts.Size >= 0 && opts.Size <= partSize {
		var buf []byte
		if opts.Size < smallObject {
			buf = make([]byte, opts.Size)
		} else {
			pb, err := s.getBuf(ctx, opts.Size)
			if err != nil {
				return store.Info{}, s.failf("put", key, "%w", err)
			}
			defer s.putBuf(pb)
			buf = pb.b[:opts.Size]
		}
		_, cs, err := s.checksum.readPart(v, buf)
		if err != nil {
			return store.Info{}, s.readError(key, v, opts, err)
		}
		// One more read must find the end (the Verifier fails on an extra byte).
		var one [1]byte
		if _, err := io.ReadFull(v, one[:]); err != io.EOF {
			return store.Info{}, s.readError(key, v, opts, err)
		}
		if err := v.Check(); err != nil {
			return store.Info{}, err
		}
		sum := v.Sum()
		mtime, etag, err := s.putObject(ctx, key, buf, sum, cs, opts, nil)
		if err != nil {
			return store.Info{}, s.failf("put", key, "%w", err)
		}
		return store.Info{Key: key, Size: int64(len(buf)), SHA256: sum, ModTime: mtime, ETag: etag}, nil
	}

	// Unknown or large size: read the first part, and decide.
	first, err := s.getBuf(ctx, partSize)
	if err != nil {
		return store.Info{}, s.failf("put", key, "%w", err)
	}
	n, cs, err := s.checksum.readPart(v, first.b)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// The whole object fitted (unknown size, or a known size that turns out short, which
		// Check reports).
		defer s.putBuf(first)
		if err := v.Check(); err != nil {
			return store.Info{}, err
		}
		sum := v.Sum()
		data := first.b[:n]
		mtime, etag, err := s.putObject(ctx, key, data, sum, cs, opts, nil)
		if err != nil {
			return store.Info{}, s.failf("put", key, "%w", err)
		}
		return store.Info{Key: key, Size: int64(n), SHA256: sum, ModTime: mtime, ETag: etag}, nil
	case err != nil:
		s.putBuf(first)
		return store.Info{}, s.readError(key, v, opts, err)
	}
	return s.putMultipart(ctx, key, v, opts, partSize, first, cs)
}

// MaxObjectSize is the largest object S3 stores (5 TiB).
const MaxObjectSize = 5 << 40

// ErrBufferBudget is wrapped by the error of a Put whose parts cannot fit in the store's upload
// buffer budget (Options.BufferBudget), refused before any byte is read.
var ErrBufferBudget = errors.New("more than the whole upload buffer budget")

// partSizeOf is the part size of an object of size bytes sent in parts of partSize: larger when
// that would take more than MaxParts parts.
func partSizeOf(partSize, size int64) int64 {
	if size > partSize*MaxParts {
		return (size + MaxParts - 1) / MaxParts
	}
	return partSize
}

// partSizeFor returns the part size of an object of size bytes (negative: unknown): the
// store's, or larger when the object needs more than MaxParts of those. A size above
// MaxObjectSize, or one whose parts do not fit in the buffer budget, is refused before any byte
// is read or any memory is taken.
func (s *Store) partSizeFor(key string, size int64) (int64, error) {
	if size > MaxObjectSize {
		return 0, s.failf("put", key, "declared size of %d bytes is more than S3's largest object (%d bytes, 5 TiB)", size, int64(MaxObjectSize))
	}
	partSize := partSizeOf(s.partSize, size)
	if s.units(partSize) > s.bufs.units {
		return 0, s.failf("put", key, "%d bytes need parts of %d bytes (S3 allows %d parts), %w of %d bytes", size, partSize, MaxParts, ErrBufferBudget, s.BufferBudget())
	}
	return partSize, nil
}

// readError wraps an error from reading Put's source.
func (s *Store) readError(key string, v *store.Verifier, opts store.PutOptions, err error) error {
	if errors.Is(err, store.ErrChecksum) {
		return err
	}
	// io.ReadFull drops the Verifier's error when the buffer fills at the same read; an end
	// of input or a silent overrun is then a size (or hash) mismatch that Check names.
	if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
		if cerr := v.Check(); cerr != nil {
			return cerr
		}
		if err == nil {
			err = errors.New("unexpected state")
		}
	}
	return s.failf("put", key, "reading source after %d bytes: %w", v.N(), err)
}

// putObject sends data with one PutObject, recording sum as the sha256 and carrying cs, the
// checksum of data the server checks (nil: none); cond, when not nil, adds the request's
// conditions (If-None-Match, If-Match). A mismatch the server reports is sent again, up to
// maxTransitAttempts times in all. It returns the server's time and the new object's ETag.
func (s *Store) putObject(ctx context.Context, key string, data []byte, sum string, cs *sum, opts store.PutOptions, cond func(*s3.PutObjectInput)) (time.Time, string, error) {
	return s.putObjectBody(ctx, key, int64(len(data)), func() io.ReadSeeker { return bytes.NewReader(data) }, sum, cs, opts, cond)
}

// putObjectBody is putObject of the n bytes body reads (a new reader at every call).
func (s *Store) putObjectBody(ctx context.Context, key string, n int64, body func() io.ReadSeeker, sum string, cs *sum, opts store.PutOptions, cond func(*s3.PutObjectInput)) (time.Time, string, error) {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.fullKey(key)),
		ContentLength: aws.Int64(n),
		ContentType:   optString(opts.ContentType),
		CacheControl:  optString(opts.CacheControl),
		Metadata:      s.metadata(sum),
	}
	cs.setPut(in)
	if cond != nil {
		cond(in)
	}
	var out *s3.PutObjectOutput
	err := s.sendChecked(ctx, key, 0, func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		in.Body = body()
		var err error
		out, err = s.client.PutObject(ctx, in, unsignedPayload)
		return err
	})
	if err != nil {
		return time.Time{}, "", err
	}
	return serverTime(out.ResultMetadata), etagOf(out.ETag), nil
}

// metadata is the user metadata of an object whose sha256 is sum ("": not known yet).
func (s *Store) metadata(sum string) map[string]string {
	md := map[string]string{}
	if sum != "" {
		md[MetadataSHA256] = sum
	}
	if s.checksum != ChecksumNone {
		md[MetadataChecksum] = string(s.checksum)
	}
	return md
}

// sendChecked calls send, again while the server answers that the body it received does not
// match the checksum sent with it (the bytes were changed on the way), up to maxTransitAttempts
// times in all; the last mismatch is returned wrapped in ErrTransit. Each new attempt is logged
// to Options.RetryLog with key (relative to the prefix) and part (0: none).
func (s *Store) sendChecked(ctx context.Context, key string, part int32, send func() error) error {
	return s.sendCheckedIf(ctx, key, part, isTransitMismatch, send)
}

// sendCheckedIf is sendChecked with mismatch deciding which errors mean the body was changed.
// Only mismatches are tried again here: everything else was already tried by the SDK's retryer.
func (s *Store) sendCheckedIf(ctx context.Context, key string, part int32, mismatch func(error) bool, send func() error) error {
	p := retry.Policy{
		Attempts:  maxTransitAttempts,
		Backoff:   func(attempt int) time.Duration { return time.Duration(attempt) * 100 * time.Millisecond },
		Permanent: func(err error) bool { return !mismatch(err) },
		Notify: func(attempt int, err error) {
			s.transitRetries.Add(1)
			if log := s.opts.RetryLog; log != nil {
				op := ""
				var oe *smithy.OperationError
				if errors.As(err, &oe) {
					op = oe.Operation()
				}
				attrs := []any{"op", op, "bucket", s.bucket, "key", s.fullKey(key)}
				if part > 0 {
					attrs = append(attrs, "part", part)
				}
				attrs = append(attrs, "retry", attempt, "after", describeErr(err))
				log.InfoContext(ctx, "retrying", attrs...)
			}
		},
	}
	err := retry.Do(ctx, p, func(context.Context) error { return send() })
	re, ok := err.(*retry.Error)
	switch {
	case !ok:
		return err
	case re.Interrupted != nil:
		return fmt.Errorf("%w (interrupted after %d attempts): %w", ErrTransit, re.Attempts, re.Err)
	case mismatch(re.Err):
		return fmt.Errorf("%w (%d attempts): %w", ErrTransit, re.Attempts, re.Err)
	default:
		return re.Err // another failure after a mismatch: the SDK's, as it was
	}
}

// serverTime is the Date of the response described by md (the time the server stored the
// object, to the second), or the local time when the response has none: the write operations
// do not return Last-Modified and a HeadObject per write would cost a round trip.
func serverTime(md middleware.Metadata) time.Time {
	if resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok && resp.Response != nil {
		if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			return t
		}
	}
	return time.Now().Truncate(time.Second)
}

// verifyBytes checks data against opts and returns its sha256.
func (s *Store) verifyBytes(op, key string, data []byte, opts store.PutOptions) (string, error) {
	if opts.Size >= 0 && int64(len(data)) != opts.Size {
		return "", s.failf(op, key, "%w: size %d, expected %d", store.ErrChecksum, len(data), opts.Size)
	}
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	if opts.SHA256 != "" && !strings.EqualFold(sum, opts.SHA256) {
		return "", s.failf(op, key, "%w: sha256 %s, expected %s", store.ErrChecksum, sum, opts.SHA256)
	}
	return sum, nil
}

// units is how many units of the store's buffer budget a buffer of size bytes takes.
func (s *Store) units(size int64) int64 { return s.bufs.unitsOf(size) }

// getBuf returns a buffer of size bytes once the store's buffer budget (Options.BufferBudget, or
// the Buffers it shares with other stores) has room for it: all the Puts sharing the budget
// hold at most that, however many files are uploaded at once and however large their parts.
// partSizeFor refuses sizes above the whole budget.
func (s *Store) getBuf(ctx context.Context, size int64) (*partBuf, error) {
	return s.bufs.get(ctx, size)
}

// putBuf releases a buffer taken with getBuf.
func (s *Store) putBuf(pb *partBuf) { s.bufs.put(pb) }

// putMultipart uploads the object whose first part, already read from v, is in first, with
// checksum firstSum.
//
// Each part carries its checksum (s.checksum) for the server to check. With a CRC the upload is
// created as a FULL_OBJECT one of that algorithm, the Complete request lists every part's CRC
// and carries the CRC of the whole object (combined from the parts' as they are read, so every
// byte is summed once): the server refuses to assemble anything else.
func (s *Store) putMultipart(ctx context.Context, key string, v *store.Verifier, opts store.PutOptions, partSize int64, first *partBuf, firstSum *sum) (info store.Info, err error) {
	return s.putParts(ctx, key, v, opts, partSize, s.bufPart(first, len(first.b), firstSum), &bufParts{s: s, v: v, partSize: partSize})
}

// upPart is one part of an upload, read and summed: n bytes, whose checksum is sum, sent from
// body (a new reader over the same bytes at every call, so a request can be sent again); release
// lets go of its bytes once the part has been answered (or will not be sent).
type upPart struct {
	n       int
	sum     *sum
	body    func() io.ReadSeeker
	release func()
}

// bufPart is the part held in the first n bytes of pb.
func (s *Store) bufPart(pb *partBuf, n int, cs *sum) upPart {
	return upPart{n: n, sum: cs, body: func() io.ReadSeeker { return bytes.NewReader(pb.b[:n]) }, release: func() { s.putBuf(pb) }}
}

// partSource reads the parts of an upload after the first one.
type partSource interface {
	// next reads the next part of at most partSize bytes (fewer, or none, at the end) as readPart
	// does: io.EOF or io.ErrUnexpectedEOF at the end, another error when reading failed, and
	// errNoBuffer (with no part) when ctx ended while waiting for memory to read into.
	next(ctx context.Context) (upPart, error)
	// atEnd reports nil when the input has no byte left, and an error otherwise.
	atEnd() error
}

// errNoBuffer is a partSource's answer when ctx ended before it had memory to read into.
var errNoBuffer = errors.New("no buffer")

// bufParts reads parts from v into buffers of the store's budget.
type bufParts struct {
	s        *Store
	v        *store.Verifier
	partSize int64
}

func (b *bufParts) next(ctx context.Context) (upPart, error) {
	pb, err := b.s.getBuf(ctx, b.partSize)
	if err != nil {
		return upPart{}, errNoBuffer
	}
	n, ps, err := b.s.checksum.readPart(b.v, pb.b)
	if n == 0 {
		b.s.putBuf(pb)
		return upPart{}, err
	}
	return b.s.bufPart(pb, n, ps), err
}

func (b *bufParts) atEnd() error {
	var one [1]byte
	if n, err := io.ReadFull(b.v, one[:]); n > 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = errMoreParts
		}
		return err
	}
	return nil
}

// errMoreParts is the failure of an input longer than MaxParts parts.
var errMoreParts = fmt.Errorf("more than %d parts", MaxParts)

// putParts uploads the object whose first part, already read from v, is first, reading the
// others from src: the multipart upload of putMultipart, whatever holds the parts' bytes (the
// store's buffers, or a ChunkReader's chunks).
func (s *Store) putParts(ctx context.Context, key string, v *store.Verifier, opts store.PutOptions, partSize int64, first upPart, src partSource) (info store.Info, err error) {
	firstSum := first.sum
	if err := ctx.Err(); err != nil {
		first.release()
		return store.Info{}, s.failf("put", key, "%w", err)
	}
	cin := &s3.CreateMultipartUploadInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(s.fullKey(key)),
		ContentType:  optString(opts.ContentType),
		CacheControl: optString(opts.CacheControl),
		Metadata:     s.metadata(opts.SHA256),
	}
	if alg := s.checksum.algorithm(); alg != "" {
		cin.ChecksumAlgorithm = alg
		cin.ChecksumType = types.ChecksumTypeFullObject
	}
	created, err := s.client.CreateMultipartUpload(ctx, cin)
	if err != nil {
		first.release()
		return store.Info{}, s.failf("put", key, "starting multipart upload: %w", err)
	}
	uploadID := created.UploadId
	completed, interrupted := false, false
	defer func() {
		if completed {
			return
		}
		if aerr := s.abortUpload(ctx, key, uploadID, interrupted); aerr != nil {
			err = fmt.Errorf("%w (and %w)", err, aerr)
		}
	}()

	var (
		mu    sync.Mutex
		parts []types.CompletedPart
	)
	// gctx stops the reading loop and the parts not yet started, when ctx is cancelled or a
	// part fails. Parts already sent are let finish (on partCtx, cancelled only abortGrace after
	// ctx): a server may go on storing a part whose request was cut, and bring the upload back
	// after it was aborted (versitygw does). Waiting for their answers makes the abort final.
	g, gctx := errgroup.WithContext(ctx)
	partCtx, cancelParts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelParts()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(abortGrace, cancelParts) })
	defer stopGrace()
	// At most concurrency parts in flight plus the one being read: g.Go blocks while the limit
	// is reached, holding the freshly read buffer.
	g.SetLimit(s.concurrency)
	upload := func(num int32, p upPart) {
		n, ps := p.n, p.sum
		g.Go(func() error {
			defer p.release()
			if err := gctx.Err(); err != nil {
				return err
			}
			in := &s3.UploadPartInput{
				Bucket:        aws.String(s.bucket),
				Key:           aws.String(s.fullKey(key)),
				UploadId:      uploadID,
				PartNumber:    aws.Int32(num),
				ContentLength: aws.Int64(int64(n)),
			}
			cp := types.CompletedPart{PartNumber: aws.Int32(num)}
			ps.setPart(in, &cp)
			var out *s3.UploadPartOutput
			err := s.sendChecked(gctx, key, num, func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				in.Body = p.body()
				var err error
				out, err = s.client.UploadPart(partCtx, in, unsignedPayload)
				return err
			})
			if err != nil {
				return s.failf("put", key, "uploading part %d: %w", num, err)
			}
			cp.ETag = out.ETag
			mu.Lock()
			parts = append(parts, cp)
			mu.Unlock()
			return nil
		})
	}

	var readErr error
	num := int32(1)
	whole := firstSum // the checksum of every byte read so far
	upload(num, first)
	for {
		if gctx.Err() != nil {
			break // an upload failed or ctx was cancelled; g.Wait says which
		}
		if num == MaxParts {
			// The next read must find the end: at most MaxParts parts.
			if rerr := src.atEnd(); rerr != nil {
				if rerr == errMoreParts {
					rerr = fmt.Errorf("more than %d parts of %d bytes", MaxParts, partSize)
				}
				readErr = rerr
			}
			break
		}
		p, rerr := src.next(gctx)
		if rerr == errNoBuffer {
			break // cancelled or a part failed: g.Wait says which
		}
		if p.n > 0 {
			num++
			if s.checksum.isCRC() {
				whole = combine(whole, p.sum)
			}
			upload(num, p)
		} else if p.release != nil {
			defer p.release()
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			readErr = rerr
			break
		}
	}
	uploadErr := g.Wait()
	interrupted = partCtx.Err() != nil
	if err := s.partsOutcome(ctx, key, v, opts, readErr, uploadErr); err != nil {
		return store.Info{}, err
	}
	sum := v.Sum()
	done, err := s.completeUpload(ctx, key, uploadID, parts, whole)
	if err != nil {
		return store.Info{}, err
	}
	completed = true
	info = store.Info{Key: key, Size: v.N(), SHA256: sum, ModTime: serverTime(done.ResultMetadata), ETag: etagOf(done.ETag)}

	if opts.SHA256 == "" && v.N() <= MaxCopySize {
		mtime, etag, err := s.recordSHA256(ctx, key, sum, opts)
		if err != nil {
			return info, err
		}
		info.ModTime, info.ETag = mtime, etag
	}
	return info, nil
}

// partsOutcome is the failure of putParts once every part it sent returned: the input's (readErr,
// or a size or sha256 v finds wrong), a part's (uploadErr), or ctx's; nil when the upload may be
// completed.
func (s *Store) partsOutcome(ctx context.Context, key string, v *store.Verifier, opts store.PutOptions, readErr, uploadErr error) error {
	switch {
	case readErr != nil:
		return s.readError(key, v, opts, readErr)
	case uploadErr != nil:
		if cerr := ctx.Err(); cerr != nil {
			return s.failf("put", key, "%w", cerr)
		}
		return uploadErr
	case ctx.Err() != nil:
		return s.failf("put", key, "%w", ctx.Err())
	}
	return v.Check()
}

// completeUpload completes the multipart upload of key with its parts (in any order) and, with
// a CRC, the whole object's checksum.
func (s *Store) completeUpload(ctx context.Context, key string, uploadID *string, parts []types.CompletedPart, whole *sum) (*s3.CompleteMultipartUploadOutput, error) {
	// Parts were appended as they finished; Complete wants them in order.
	sortParts(parts)
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(s.fullKey(key)),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if s.checksum.isCRC() {
		whole.setComplete(in)
	}
	// The Complete's body (the parts and their checksums) can be changed on the way like any
	// other: the server then refuses it, and it is sent again rather than the file failing.
	var done *s3.CompleteMultipartUploadOutput
	err := s.sendCheckedIf(ctx, key, 0, isCompleteMismatch, func() error {
		var err error
		done, err = s.client.CompleteMultipartUpload(ctx, in)
		return err
	})
	if errors.Is(err, ErrTransit) {
		return nil, s.failf("put", key, "completing multipart upload: the server kept refusing the list of parts and their checksums (changed on the way, or the parts it holds do not add up to what was read): %w", err)
	}
	if err != nil {
		return nil, s.failf("put", key, "completing multipart upload: %w", err)
	}
	return done, nil
}

// abortUpload aborts a multipart upload, with a context of its own since the caller's may be the
// reason for failing. When part uploads were interrupted, the server may still be storing a
// part after the abort and so bring the upload back (versitygw does, and AWS documents that an
// abort may have to be repeated): then the upload is checked with ListParts and aborted again
// until it is gone.
func (s *Store) abortUpload(ctx context.Context, key string, uploadID *string, interrupted bool) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	delay := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket:   aws.String(s.bucket),
			Key:      aws.String(s.fullKey(key)),
			UploadId: uploadID,
		})
		if err != nil && !isCode(err, "NoSuchUpload") {
			return fmt.Errorf("aborting upload %s of %s failed: %w", aws.ToString(uploadID), s.uri(key), err)
		}
		if !interrupted || attempt == 4 {
			return nil
		}
		select {
		case <-actx.Done():
			return fmt.Errorf("aborting upload %s of %s: %w", aws.ToString(uploadID), s.uri(key), actx.Err())
		case <-time.After(delay):
		}
		delay *= 2
		_, err = s.client.ListParts(actx, &s3.ListPartsInput{
			Bucket:   aws.String(s.bucket),
			Key:      aws.String(s.fullKey(key)),
			UploadId: uploadID,
			MaxParts: aws.Int32(1),
		})
		if isCode(err, "NoSuchUpload") || httpStatus(err) == http.StatusNotFound {
			return nil
		}
	}
}

// recordSHA256 rewrites the object's metadata in place (CopyObject onto itself with
// MetadataDirective REPLACE) to record sum. It returns the rewritten object's time and ETag.
func (s *Store) recordSHA256(ctx context.Context, key, sum string, opts store.PutOptions) (time.Time, string, error) {
	out, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(s.fullKey(key)),
		CopySource:        aws.String(copySource(s.bucket, s.fullKey(key))),
		MetadataDirective: types.MetadataDirectiveReplace,
		Metadata:          s.metadata(sum),
		ContentType:       optString(opts.ContentType),
		CacheControl:      optString(opts.CacheControl),
	})
	if err != nil {
		return time.Time{}, "", s.failf("put", key, "recording sha256 in metadata: %w", err)
	}
	var etag string
	if out.CopyObjectResult != nil {
		etag = etagOf(out.CopyObjectResult.ETag)
		if out.CopyObjectResult.LastModified != nil {
			return *out.CopyObjectResult.LastModified, etag, nil
		}
	}
	return serverTime(out.ResultMetadata), etag, nil
}

func sortParts(parts []types.CompletedPart) {
	// Insertion sort: parts arrive almost in order.
	for i := 1; i < len(parts); i++ {
		for j := i; j > 0 && aws.ToInt32(parts[j-1].PartNumber) > aws.ToInt32(parts[j].PartNumber); j-- {
			parts[j-1], parts[j] = parts[j], parts[j-1]
		}
	}
}
