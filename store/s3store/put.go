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
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"

	"github.com/ssmirror/ssmirror/store"
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
		return store.Info{}, fmt.Errorf("put %s: %w", s.uri(key), err)
	}
	if opts.SHA256 != "" && !hexSHA256.MatchString(strings.ToLower(opts.SHA256)) {
		return store.Info{}, fmt.Errorf("put %s: expected sha256 %q is not 64 hex digits", s.uri(key), opts.SHA256)
	}
	opts.SHA256 = strings.ToLower(opts.SHA256)
	if err := ctx.Err(); err != nil {
		return store.Info{}, fmt.Errorf("put %s: %w", s.uri(key), err)
	}
	v := store.NewVerifier(key, r, opts)

	partSize := s.partSize
	if opts.Size > partSize*MaxParts {
		partSize = (opts.Size + MaxParts - 1) / MaxParts
	}

	// Small known size: one buffer, one request.
	if opts.Size >= 0 && opts.Size <= partSize {
		var buf []byte
		if opts.Size < smallObject || partSize != s.partSize {
			buf = make([]byte, opts.Size)
		} else {
			bp, err := s.getBuf(ctx)
			if err != nil {
				return store.Info{}, fmt.Errorf("put %s: %w", s.uri(key), err)
			}
			defer s.putBuf(bp)
			buf = (*bp)[:opts.Size]
		}
		if _, err := io.ReadFull(v, buf); err != nil {
			return store.Info{}, readError(s.uri(key), v, opts, err)
		}
		// One more read must find the end (the Verifier fails on an extra byte).
		var one [1]byte
		if _, err := io.ReadFull(v, one[:]); err != io.EOF {
			return store.Info{}, readError(s.uri(key), v, opts, err)
		}
		if err := v.Check(); err != nil {
			return store.Info{}, err
		}
		sum := v.Sum()
		mtime, etag, err := s.putObject(ctx, key, buf, sum, opts, false)
		if err != nil {
			return store.Info{}, fmt.Errorf("put %s: %w", s.uri(key), err)
		}
		return store.Info{Key: key, Size: int64(len(buf)), SHA256: sum, ModTime: mtime, ETag: etag}, nil
	}

	// Unknown or large size: read the first part, and decide.
	var first *[]byte
	var err error
	if partSize == s.partSize {
		if first, err = s.getBuf(ctx); err != nil {
			return store.Info{}, fmt.Errorf("put %s: %w", s.uri(key), err)
		}
	} else {
		b := make([]byte, partSize)
		first = &b
	}
	n, err := io.ReadFull(v, *first)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// The whole object fitted (unknown size, or a known size that turns out short, which
		// Check reports).
		defer s.putBuf(first)
		if err := v.Check(); err != nil {
			return store.Info{}, err
		}
		sum := v.Sum()
		data := (*first)[:n]
		mtime, etag, err := s.putObject(ctx, key, data, sum, opts, false)
		if err != nil {
			return store.Info{}, fmt.Errorf("put %s: %w", s.uri(key), err)
		}
		return store.Info{Key: key, Size: int64(n), SHA256: sum, ModTime: mtime, ETag: etag}, nil
	case err != nil:
		s.putBuf(first)
		return store.Info{}, readError(s.uri(key), v, opts, err)
	}
	return s.putMultipart(ctx, key, v, opts, partSize, first)
}

// readError wraps an error from reading Put's source.
func readError(name string, v *store.Verifier, opts store.PutOptions, err error) error {
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
	return fmt.Errorf("put %s: reading source after %d bytes: %w", name, v.N(), err)
}

// putObject sends data with one PutObject, recording sum as the sha256; exclusive adds
// If-None-Match: *. It returns the server's time and the new object's ETag.
func (s *Store) putObject(ctx context.Context, key string, data []byte, sum string, opts store.PutOptions, exclusive bool) (time.Time, string, error) {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.fullKey(key)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   optString(opts.ContentType),
		CacheControl:  optString(s.cacheControl(key, opts)),
		Metadata:      map[string]string{MetadataSHA256: sum},
	}
	if exclusive {
		in.IfNoneMatch = aws.String("*")
	}
	if err := ctx.Err(); err != nil {
		return time.Time{}, "", err
	}
	out, err := s.client.PutObject(ctx, in, unsignedPayload)
	if err != nil {
		return time.Time{}, "", err
	}
	return serverTime(out.ResultMetadata), etagOf(out.ETag), nil
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
func verifyBytes(key string, data []byte, opts store.PutOptions) (string, error) {
	if opts.Size >= 0 && int64(len(data)) != opts.Size {
		return "", fmt.Errorf("%s: %w: size %d, expected %d", key, store.ErrChecksum, len(data), opts.Size)
	}
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	if opts.SHA256 != "" && !strings.EqualFold(sum, opts.SHA256) {
		return "", fmt.Errorf("%s: %w: sha256 %s, expected %s", key, store.ErrChecksum, sum, opts.SHA256)
	}
	return sum, nil
}

// getBuf returns a part buffer from the store's free list, or a new one, once the store-wide
// budget (Options.BufferBudget) has room for it: all the Puts of one Store share the budget, so
// memory stays bounded however many files are uploaded at once. A waiting Put always gets a
// buffer eventually: every buffer taken is released when its part has been answered.
func (s *Store) getBuf(ctx context.Context) (*[]byte, error) {
	select {
	case s.tokens <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	select {
	case bp := <-s.bufs:
		return bp, nil
	default:
		b := make([]byte, s.partSize)
		return &b, nil
	}
}

// putBuf returns a part buffer to the free list, which keeps at most PartConcurrency+1 of them
// (what one Put uses) between Puts; others are left to the garbage collector.
func (s *Store) putBuf(bp *[]byte) {
	if bp == nil || int64(cap(*bp)) != s.partSize {
		return
	}
	*bp = (*bp)[:s.partSize]
	select {
	case s.bufs <- bp:
	default:
	}
	<-s.tokens
}

// putMultipart uploads the object whose first part, already read from v, is in first.
func (s *Store) putMultipart(ctx context.Context, key string, v *store.Verifier, opts store.PutOptions, partSize int64, first *[]byte) (info store.Info, err error) {
	name := s.uri(key)
	md := map[string]string{}
	if opts.SHA256 != "" {
		md[MetadataSHA256] = opts.SHA256
	}
	if err := ctx.Err(); err != nil {
		s.putBuf(first)
		return store.Info{}, fmt.Errorf("put %s: %w", name, err)
	}
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(s.fullKey(key)),
		ContentType:  optString(opts.ContentType),
		CacheControl: optString(s.cacheControl(key, opts)),
		Metadata:     md,
	})
	if err != nil {
		s.putBuf(first)
		return store.Info{}, fmt.Errorf("put %s: starting multipart upload: %w", name, err)
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
	upload := func(num int32, bp *[]byte, n int) {
		g.Go(func() error {
			defer s.putBuf(bp)
			if err := gctx.Err(); err != nil {
				return err
			}
			out, err := s.client.UploadPart(partCtx, &s3.UploadPartInput{
				Bucket:        aws.String(s.bucket),
				Key:           aws.String(s.fullKey(key)),
				UploadId:      uploadID,
				PartNumber:    aws.Int32(num),
				Body:          bytes.NewReader((*bp)[:n]),
				ContentLength: aws.Int64(int64(n)),
			}, unsignedPayload)
			if err != nil {
				return fmt.Errorf("put %s: uploading part %d: %w", name, num, err)
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
			mu.Unlock()
			return nil
		})
	}

	var readErr error
	num := int32(1)
	upload(num, first, len(*first))
	for {
		if gctx.Err() != nil {
			break // an upload failed or ctx was cancelled; g.Wait says which
		}
		if num == MaxParts {
			// The next read must find the end: at most MaxParts parts.
			var one [1]byte
			if n, rerr := io.ReadFull(v, one[:]); n > 0 || rerr != io.EOF {
				if rerr == nil || rerr == io.EOF {
					rerr = fmt.Errorf("more than %d parts of %d bytes", MaxParts, partSize)
				}
				readErr = rerr
			}
			break
		}
		var bp *[]byte
		if partSize == s.partSize {
			var berr error
			if bp, berr = s.getBuf(gctx); berr != nil {
				break // cancelled or a part failed: g.Wait says which
			}
		} else {
			b := make([]byte, partSize)
			bp = &b
		}
		n, rerr := io.ReadFull(v, *bp)
		if n > 0 {
			num++
			upload(num, bp, n)
		} else {
			s.putBuf(bp)
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
	switch {
	case readErr != nil:
		return store.Info{}, readError(name, v, opts, readErr)
	case uploadErr != nil:
		if cerr := ctx.Err(); cerr != nil {
			return store.Info{}, fmt.Errorf("put %s: %w", name, cerr)
		}
		return store.Info{}, uploadErr
	case ctx.Err() != nil:
		return store.Info{}, fmt.Errorf("put %s: %w", name, ctx.Err())
	}
	if err := v.Check(); err != nil {
		return store.Info{}, err
	}
	sum := v.Sum()

	// Parts were appended as they finished; Complete wants them in order.
	sortParts(parts)
	done, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(s.fullKey(key)),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return store.Info{}, fmt.Errorf("put %s: completing multipart upload: %w", name, err)
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
		Metadata:          map[string]string{MetadataSHA256: sum},
		ContentType:       optString(opts.ContentType),
		CacheControl:      optString(s.cacheControl(key, opts)),
	})
	if err != nil {
		return time.Time{}, "", fmt.Errorf("put %s: recording sha256 in metadata: %w", s.uri(key), err)
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
