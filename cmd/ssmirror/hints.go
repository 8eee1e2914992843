package main

import (
	"errors"
	"net/http"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/sync"
)

// The libraries name their settings in their own terms (Options fields), never this command's
// flags; flagHint says which flag changes the setting an error is about.
func flagHint(err error) string {
	var empty *sync.EmptySelectionError
	var mode *sync.ModeChangeError
	switch {
	case errors.As(err, &mode):
		if mode.Recorded.Publish == sync.ModeCurated {
			return "give --signing-key with the mirror's key, or --allow-mode-change if the change is meant"
		}
		return "drop --signing-key to keep it verbatim, or give --allow-mode-change if the change is meant"
	case errors.As(err, &empty):
		return "give --allow-empty to run with an empty selection anyway"
	case errors.Is(err, sync.ErrNoKeyring):
		return "give --keyring FILE to verify it, or --no-verify to read it unchecked"
	case errors.Is(err, sync.ErrTooLarge):
		return "the limit is --max-file-size"
	case errors.Is(err, sync.ErrTooSlow):
		return "the minimum rate is --min-rate"
	case errors.Is(err, s3store.ErrBufferBudget):
		return "the budget is --upload-buffers; the part size --part-size"
	case errors.Is(err, store.ErrOverLimit):
		return "the metadata limit is --metadata-max-size"
	case errors.Is(err, sync.ErrMetadataOnlyCurated):
		return "--no-item-download cannot be combined with --signing-key"
	}
	return s3Mistake(err)
}

// s3Mistake says how to fix an S3 answer that means the configuration is wrong (exit 2): the
// bucket does not exist, or the credentials are refused. "" for any other error.
func s3Mistake(err error) string {
	_, fix := s3Trouble(err)
	return fix
}

// s3Trouble names an S3 answer that means the configuration is wrong, and says how to fix it:
// "the bucket does not exist", or "access denied" (refused credentials); "" for any other error.
// status names the trouble before its error, the hint after it gives the fix.
func s3Trouble(err error) (what, fix string) {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return "", ""
	}
	switch ae.ErrorCode() {
	case "NoSuchBucket":
		return "the bucket does not exist", "create the bucket first (aws s3 mb s3://BUCKET, mc mb ALIAS/BUCKET), or fix the bucket's name in the location"
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "InvalidClientTokenId", "ExpiredToken":
		return "access denied", refusedCredentials
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		return "access denied", refusedCredentials
	}
	return "", ""
}

// refusedCredentials is the hint for an S3 service that refused the target's credentials.
const refusedCredentials = "the S3 service refused these credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the profile named by --profile, AWS_PROFILE or ?profile= (its keys in ~/.aws/credentials), or the config file's [target] section, and that they may use this bucket"

// withHint is err's message followed by its flagHint, on a line of its own after a message of
// several lines.
func withHint(err error) string {
	msg := err.Error()
	h := flagHint(err)
	switch {
	case h == "":
		return msg
	case strings.Contains(msg, "\n"):
		return msg + "\n" + h
	}
	return msg + " (" + h + ")"
}
