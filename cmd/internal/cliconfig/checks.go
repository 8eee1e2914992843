package cliconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// checkCredentials retrieves the S3 client's credentials now, so that their absence is said
// plainly (which variables or flag to set) instead of as the SDK's chain of provider errors
// after the first request.
func checkCredentials(ctx context.Context, client *s3.Client, profile string) error {
	creds := client.Options().Credentials
	if creds == nil {
		return errors.New("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile with --profile (or AWS_PROFILE, or ?profile=NAME on the location)")
	}
	if profile != "" {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if _, err := creds.Retrieve(cctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("no AWS credentials for profile %s: give it aws_access_key_id and aws_secret_access_key in ~/.aws/credentials ($AWS_SHARED_CREDENTIALS_FILE), or a role or SSO session in ~/.aws/config ($AWS_CONFIG_FILE) (the AWS SDK said: %s)", profile, lastLine(err))
		}
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := creds.Retrieve(cctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or name a profile of ~/.aws/config or ~/.aws/credentials with --profile (or AWS_PROFILE), or run with an instance or task role (the AWS SDK said: %s)",
			lastLine(err))
	}
	return nil
}

// lastLine is the innermost part of a wrapped error chain's message.
func lastLine(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}

// httpDoer sends a request: an *http.Client, or the AWS SDK's HTTP client.
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// probeRoot sends one HEAD request to an http(s) endpoint's root with the client that will do
// the work (its CAs, its proxy), so that a wrong endpoint fails at once rather than after the
// SDK's or the client's retries (8 attempts, about 30 s). It returns the parsed endpoint (nil:
// not an http(s) URL, nothing sent) and the request's error (nil: any answer).
func probeRoot(ctx context.Context, endpoint string, client httpDoer) (*url.URL, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, nil
	}
	root := *u
	root.User, root.Path, root.RawPath, root.RawQuery = nil, "/", "", ""
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodHead, root.String(), nil)
	if err != nil {
		return nil, nil
	}
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return u, err
}

// checkTLS fails at once when an https:// endpoint cannot be spoken to over TLS — it answers
// in plain HTTP (the scheme is wrong), or its certificate does not verify (one probeRoot). Any
// answer, and any other failure, is left to the run.
func checkTLS(ctx context.Context, what, endpoint string, client httpDoer) error {
	u, err := probeRoot(ctx, endpoint, client)
	return tlsTrouble(what, u, err)
}

// probeEndpoint is listenTrouble and tlsTrouble on one probeRoot: an S3 endpoint where nothing
// listens, whose host does not resolve, or that cannot be spoken to over TLS fails at once.
func probeEndpoint(ctx context.Context, what, endpoint string, client httpDoer) error {
	u, err := probeRoot(ctx, endpoint, client)
	if lerr := listenTrouble(what, u, err); lerr != nil {
		return lerr
	}
	return tlsTrouble(what, u, err)
}

// tlsTrouble is the error of a probe of u (probeRoot) that failed over TLS: a plain HTTP answer
// or a certificate that does not verify; nil for anything else.
func tlsTrouble(what string, u *url.URL, err error) error {
	if u == nil || err == nil || u.Scheme != "https" {
		return nil
	}
	shown := stripUser(u)
	var rh tls.RecordHeaderError
	// net/http reports a plain HTTP answer with this text, not a wrapped error.
	if errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		plain := *u
		plain.Scheme, plain.User = "http", nil
		return Usagef("%s %s: the server at %s does not speak TLS (it answered in plain HTTP): use %s", what, shown, u.Host, plain.String())
	}
	var (
		verr *tls.CertificateVerificationError
		ua   x509.UnknownAuthorityError
		he   x509.HostnameError
		ci   x509.CertificateInvalidError
	)
	if errors.As(err, &verr) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		hint := "add its CA with ?ca_bundle=FILE on the location, --s3-ca-bundle FILE or AWS_CA_BUNDLE=FILE"
		if what == "source" {
			hint = "add its CA with --ca-cert FILE"
		}
		return fmt.Errorf("%s %s: its TLS certificate does not verify (%s): %s, or fix the certificate", what, shown, tlsReason(err), hint)
	}
	return nil
}

// tlsReason is the certificate problem without the request around it.
func tlsReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "x509: "); i >= 0 {
		return msg[i:]
	}
	if i := strings.Index(msg, "tls: "); i >= 0 {
		return msg[i:]
	}
	return msg
}

func stripUser(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// listenTrouble is the error of a probe of u (probeRoot) that found nothing there: the
// connection refused, or the host name does not resolve; nil for anything else.
func listenTrouble(what string, u *url.URL, err error) error {
	if u == nil || err == nil {
		return nil
	}
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s %s: nothing is listening at %s (connection refused): is the server running, and is the endpoint (--s3-endpoint, ?endpoint=, the profile's endpoint_url) right?", what, stripUser(u), u.Host)
	case errors.As(err, &dns) && dns.IsNotFound:
		return Usagef("%s %s: no such host %s: fix the endpoint (--s3-endpoint, ?endpoint=, the profile's endpoint_url)", what, stripUser(u), u.Hostname())
	}
	return nil
}
