package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ssmirror/ssmirror/streams"
)

// Loud typos: settings that would otherwise be ignored or misread are named, with what was
// probably meant.

// extraEnvNames are the SSMIRROR_* variables read besides the flags' own.
var extraEnvNames = []string{
	"SOURCE", "TARGET", "FILTERS", "CONFIG", "SIGNING_PASSPHRASE", "CPUPROFILE",
	// cmd/ssmirror-lambda's own; an environment shared with it is not a typo.
	"KEYRING_DATA", "SAFETY_MARGIN",
	// the test scripts'.
	"TEST_BIN", "FUZZTIME",
}

// knownEnvNames are every SSMIRROR_* variable of every command.
func knownEnvNames() []string {
	seen := map[string]bool{}
	for _, n := range extraEnvNames {
		seen[envPrefix+n] = true
	}
	for _, c := range commandTable() {
		for _, fi := range flagsOf(commandFlags(c)) {
			seen[envName(fi.name)] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// unknownEnv returns a warning for each SSMIRROR_* variable of environ that ssmirror does not
// read, with the nearest name it does read.
func unknownEnv(environ []string) []string {
	var known []string
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) {
			continue
		}
		if known == nil {
			known = knownEnvNames()
		}
		i := sort.SearchStrings(known, name)
		if i < len(known) && known[i] == name {
			continue
		}
		msg := fmt.Sprintf("$%s is not a setting of ssmirror and is ignored", name)
		if near := nearestName(name, known); near != "" {
			msg += fmt.Sprintf(" (did you mean $%s?)", near)
		}
		warnings = append(warnings, msg)
	}
	return warnings
}

// nearestName is the candidate closest to s (case-sensitive edit distance), if close enough to
// be a typo of it.
func nearestName(s string, candidates []string) string {
	best, bestD := "", 4
	for _, c := range candidates {
		limit := max(1, (len(c)-len(envPrefix))/3)
		if d := streams.EditDistance(s, c); d < bestD && d <= limit {
			best, bestD = c, d
		}
	}
	return best
}

// filterOps are the filter operators, and what a user may type for one.
var filterOps = []string{"!=", "!~", "==", "=", "~"}

func isFilterOp(s string) bool {
	for _, op := range filterOps {
		if s == op {
			return true
		}
	}
	return false
}

func isFilterKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isKeyByte(s[i]) {
			return false
		}
	}
	return true
}

func isKeyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-'
}

// splitFilter reports whether args[i:] starts with one filter split by blanks around its
// operator ("arch" "=" "amd64", "arch=" "amd64", "arch" "=amd64"), and how many arguments it
// spans.
func splitFilter(args []string, i int) (n int, ok bool) {
	a := args[i]
	next := func(k int) string {
		if i+k < len(args) {
			return args[i+k]
		}
		return ""
	}
	switch {
	case isFilterKey(a) && isFilterOp(next(1)):
		if next(2) != "" {
			return 3, true
		}
		return 2, true
	case isFilterKey(a) && next(1) != "" && hasOpPrefix(next(1)):
		return 2, true
	case isFilterKey(strings.TrimRight(a, "!=~")) && hasOpSuffix(a) && next(1) != "":
		return 2, true
	}
	return 0, false
}

func hasOpPrefix(s string) bool {
	for _, op := range filterOps {
		if strings.HasPrefix(s, op) {
			return true
		}
	}
	return false
}

func hasOpSuffix(s string) bool {
	for _, op := range filterOps {
		if strings.HasSuffix(s, op) && len(s) > len(op) {
			return true
		}
	}
	return false
}

// parseFilterArgs parses filters given as separate words (command line, $SSMIRROR_FILTERS),
// explaining a filter split by blanks around its operator.
func parseFilterArgs(args []string) (streams.Filters, error) {
	for i := range args {
		if n, ok := splitFilter(args, i); ok {
			words := args[i : i+n]
			return nil, fmt.Errorf("filter %q: blanks around the operator split it into %d words; write it as one, without blanks: %s",
				strings.Join(words, " "), n, strings.Join(words, ""))
		}
	}
	return streams.ParseFilters(args)
}

// blankOp matches a filter line with blanks around its operator.
var blankOp = regexp.MustCompile(`^([A-Za-z0-9_.:-]+)(\s*)(!=|!~|==|=|~)(\s*)(.*)$`)

// parseFilterLine parses one line of a [filter] section, explaining blanks around the operator.
func parseFilterLine(line string) (streams.Filter, error) {
	if m := blankOp.FindStringSubmatch(line); m != nil && (m[2] != "" || m[4] != "") {
		return streams.Filter{}, fmt.Errorf("filter %q: blanks around the operator (they would be part of the key or the value); write %s%s%s",
			line, m[1], m[3], m[5])
	}
	return streams.ParseFilter(line)
}

// settingInFilter explains a "key = value" line found in a [filter] section whose key is a
// setting: settings after a [filter] header belong to the section.
func settingInFilter(line string, sectionLine int) error {
	m := blankOp.FindStringSubmatch(line)
	if m == nil || m[3] != "=" {
		return nil
	}
	k := strings.ReplaceAll(m[1], "_", "-")
	blanks := m[2] != "" || m[4] != ""
	// path is an item attribute as well as a flag: path=… is a filter.
	if !isSettingKey(k) || (!blanks && k == "path") {
		return nil
	}
	return fmt.Errorf("%q is a setting, but it follows the [filter] header on line %d, so it is read as a filter of that section: settings go before the first [filter] section", line, sectionLine)
}

// isSettingKey reports whether k is a config file key (source, target, or a flag of any
// command).
func isSettingKey(k string) bool {
	if k == "source" || k == "target" {
		return true
	}
	for _, c := range commandTable() {
		if commandFlags(c).Lookup(k) != nil {
			return true
		}
	}
	return false
}

// checkCredentials retrieves the S3 client's credentials now, so that their absence is said
// plainly (which variables or flag to set) instead of as the SDK's chain of provider errors
// after the first request.
func checkCredentials(ctx context.Context, client *s3.Client) error {
	creds := client.Options().Credentials
	if creds == nil {
		return errors.New("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile with --profile (or AWS_PROFILE)")
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

// checkTLS fails at once when an https:// endpoint cannot be spoken to over TLS — it answers
// in plain HTTP (the scheme is wrong), or its certificate does not verify — rather than after
// the SDK's or the client's retries (8 attempts, about 30 s). It sends one HEAD request to the
// endpoint's root with the client that will do the work (its CAs, its proxy). Any answer, and
// any other failure, is left to the run.
func checkTLS(ctx context.Context, what, endpoint string, client httpDoer) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" {
		return nil
	}
	shown := stripUser(u)
	root := *u
	root.User, root.Path, root.RawPath, root.RawQuery = nil, "/", "", ""
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodHead, root.String(), nil)
	if err != nil {
		return nil
	}
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		return nil
	}
	var rh tls.RecordHeaderError
	// net/http reports a plain HTTP answer with this text, not a wrapped error.
	if errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		plain := *u
		plain.Scheme, plain.User = "http", nil
		return usagef("%s %s: the server at %s does not speak TLS (it answered in plain HTTP): use %s", what, shown, u.Host, plain.String())
	}
	var (
		verr *tls.CertificateVerificationError
		ua   x509.UnknownAuthorityError
		he   x509.HostnameError
		ci   x509.CertificateInvalidError
	)
	if errors.As(err, &verr) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		hint := "add its CA with AWS_CA_BUNDLE=FILE"
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

// warnAll prints each warning.
func warnAll(w io.Writer, warnings []string) {
	for _, m := range warnings {
		warn(w, "%s", m)
	}
}
