package s3store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ssmirror/ssmirror/store"
)

// DefaultListStall is Options.ListStall when zero: a page of a listing normally takes
// milliseconds, and the client's own retries of one request take well under a minute.
const DefaultListStall = 5 * time.Minute

// ErrListLoop is the cause a listing fails with when the server hands back a continuation
// token (or marker) it had handed back before: asking for it again would bring the same pages
// again, for ever.
var ErrListLoop = errors.New("the server's listing loops")

// ErrListStalled is the cause a listing fails with when it went Options.ListStall without a
// page that brought a key it had not seen.
var ErrListStalled = errors.New("the server's listing makes no progress")

// List calls fn for each object under prefix, in key order (ListObjectsV2). Info.SHA256 is "":
// the listing does not carry user metadata; Info.ETag is the listed ETag, as Stat gives it. Keys
// ending in "/" (folder markers made by other tools) are skipped: they are not objects a Store
// writes. A listing whose server hands back a continuation token a second time fails with
// ErrListLoop, one that goes Options.ListStall without a new key with ErrListStalled; both
// messages name the endpoint.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := store.ValidPrefix(prefix); err != nil {
		return s.failf("list", prefix, "%w", err)
	}
	in := &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.fullKey(prefix)),
	}
	g := s.newListGuard("ListObjectsV2")
	for {
		pctx, cancel := g.pageContext(ctx)
		page, err := s.client.ListObjectsV2(pctx, in)
		cancel()
		if err != nil {
			return s.failf("list", prefix, "%w", g.failed(ctx, pctx, err))
		}
		for _, obj := range page.Contents {
			full := aws.ToString(obj.Key)
			g.saw(full)
			key, ok := strings.CutPrefix(full, s.prefix)
			if !ok || key == "" || strings.HasSuffix(key, "/") {
				continue
			}
			info := store.Info{
				Key:     key,
				Size:    aws.ToInt64(obj.Size),
				ModTime: aws.ToTime(obj.LastModified),
				ETag:    etagOf(obj.ETag),
			}
			if err := fn(info); err != nil {
				return err
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		next := aws.ToString(page.NextContinuationToken)
		if err := g.next(next); err != nil {
			return s.failf("list", prefix, "%w", err)
		}
		in.ContinuationToken = aws.String(next)
	}
}

// endpoint names the server the client sends its requests to, for messages.
func (s *Store) endpoint() string {
	o := s.client.Options()
	if e := aws.ToString(o.BaseEndpoint); e != "" {
		return e
	}
	return "AWS S3 (" + o.Region + ")"
}

func (s *Store) listStall() time.Duration {
	if s.opts.ListStall > 0 {
		return s.opts.ListStall
	}
	return DefaultListStall
}

// listGuard ends a paginated listing that loops or stalls: a server that hands back a token it
// handed back before (any cycle, not only the same token twice in a row), or whose pages bring
// no key beyond the greatest seen for longer than the stall limit. The SDK's paginators stop
// only on the same token twice in a row, and silently.
type listGuard struct {
	op, where string
	stall     time.Duration
	tokens    map[string]bool
	pages     int
	greatest  string    // the greatest key (or upload marker) seen
	progress  time.Time // when a page last brought a key beyond greatest (or the listing began)
	advanced  bool      // the current page brought one
}

func (s *Store) newListGuard(op string) *listGuard {
	return &listGuard{
		op: op, where: s.Describe() + " at " + s.endpoint(), stall: s.listStall(),
		tokens: map[string]bool{}, progress: time.Now(),
	}
}

// pageContext is ctx with the deadline of the next page: the stall limit after the last
// progress.
func (g *listGuard) pageContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithDeadlineCause(ctx, g.progress.Add(g.stall), g.stalled())
}

func (g *listGuard) stalled() error {
	return fmt.Errorf("%w: %s %s brought no new key in %s (%d pages)", ErrListStalled, g.op, g.where, g.stall, g.pages)
}

// failed is the error of a page's request: the stall when the page's own deadline ended it. The
// page's context is cancelled by then (its cancel runs when the request returns), so only a
// deadline that passed is the stall; any other failure is the server's answer as it was.
func (g *listGuard) failed(ctx, pctx context.Context, err error) error {
	if ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w (%w)", context.Cause(pctx), err)
	}
	return err
}

// saw notes a key (or marker) of the current page.
func (g *listGuard) saw(key string) {
	if key > g.greatest {
		g.greatest, g.advanced = key, true
	}
}

// next checks the token that asks for the next page.
func (g *listGuard) next(token string) error {
	g.pages++
	if g.advanced {
		g.progress, g.advanced = time.Now(), false
	} else if time.Since(g.progress) >= g.stall {
		return g.stalled()
	}
	if token == "" {
		return fmt.Errorf("%s %s said page %d was not the last but gave no token for the next: the listing cannot go on", g.op, g.where, g.pages)
	}
	if g.tokens[token] {
		return fmt.Errorf("%w: %s %s handed back a token it had handed back before (page %d), so asking for it again would list the same pages for ever", ErrListLoop, g.op, g.where, g.pages)
	}
	g.tokens[token] = true
	return nil
}
