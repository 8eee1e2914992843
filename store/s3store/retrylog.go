package s3store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// retryLogKey holds the *retryState of one operation in its context.
type retryLogKey struct{}

// retryState is what one S3 operation's attempts share: what it is about, how many attempts
// were sent, and why the last one failed.
type retryState struct {
	bucket, key string
	part        int32
	attempts    int
	lastErr     error
}

// addRetryLog registers, on an S3 client's middleware stack, the logging of each attempt the
// SDK's retryer makes after the first: one line at Info with the operation, bucket, key (and
// part number) and why the attempt before failed. No request or response is dumped.
func addRetryLog(log *slog.Logger) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		// The operation's input is only seen at Initialize; each attempt runs the steps after
		// the retry middleware (in Finalize) again with the context made here.
		err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ssmirrorRetryLogInit",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				st := &retryState{}
				st.bucket, st.key, st.part = describeInput(in.Parameters)
				return next.HandleInitialize(context.WithValue(ctx, retryLogKey{}, st), in)
			}), middleware.After)
		if err != nil {
			return err
		}
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("ssmirrorRetryLog",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				st, ok := ctx.Value(retryLogKey{}).(*retryState)
				if !ok {
					return next.HandleFinalize(ctx, in)
				}
				st.attempts++
				if st.attempts > 1 {
					attrs := []any{"op", awsmiddleware.GetOperationName(ctx), "bucket", st.bucket}
					if st.key != "" {
						attrs = append(attrs, "key", st.key)
					}
					if st.part > 0 {
						attrs = append(attrs, "part", st.part)
					}
					attrs = append(attrs, "retry", st.attempts-1, "after", describeErr(st.lastErr))
					log.InfoContext(ctx, "retrying", attrs...)
				}
				out, md, err := next.HandleFinalize(ctx, in)
				st.lastErr = err
				return out, md, err
			}), "Retry", middleware.After)
	}
}

// describeInput reads the Bucket, Key and PartNumber fields of an S3 operation's input, those
// it has.
func describeInput(params any) (bucket, key string, part int32) {
	v := reflect.ValueOf(params)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return "", "", 0
	}
	v = v.Elem()
	str := func(name string) string {
		if f := v.FieldByName(name); f.IsValid() {
			if p, ok := f.Interface().(*string); ok && p != nil {
				return *p
			}
		}
		return ""
	}
	if f := v.FieldByName("PartNumber"); f.IsValid() {
		if p, ok := f.Interface().(*int32); ok && p != nil {
			part = *p
		}
	}
	return str("Bucket"), str("Key"), part
}

// describeErr says in one line why an attempt failed: the HTTP status and the S3 error code and
// message when the server answered, else the error itself.
func describeErr(err error) string {
	if err == nil {
		return "unknown"
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err.Error()
	}
	s := api.ErrorCode()
	if msg := api.ErrorMessage(); msg != "" {
		s += ": " + msg
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		s = fmt.Sprintf("%d %s", re.HTTPStatusCode(), s)
	}
	return s
}
