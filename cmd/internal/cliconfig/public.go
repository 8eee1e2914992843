package cliconfig

import (
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/sync"
)

// What a mirror's readers see through caches: the metadata's Cache-Control, how long clients
// keep an index, the grace period those two make the least safe one, and the public URL a
// run reads its publish back through.

// DefaultClientCache is how long a client may go on using an index it read, on top of the
// metadata's cache lifetime: an hour for the index itself (MAAS syncs hourly; Incus and LXD keep
// an index about an hour) and an hour for the downloads of the files it names (a MAAS region
// importing a release over a slow link).
const DefaultClientCache = 2 * time.Hour

// Cache are the settings of how long caches and clients may hold the metadata.
type Cache struct {
	MetadataCacheControl string
	ClientCache          time.Duration
	AcceptShortGrace     bool
}

// AddFlags adds --metadata-cache-control, --client-cache and --accept-short-grace to fs.
func (c *Cache) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.MetadataCacheControl, "metadata-cache-control", sync.DefaultMetadataCacheControl, "Cache-Control written on the metadata (its max-age: how long a CDN or proxy may serve an index without asking again); --gc-grace must outlive it plus --client-cache")
	fs.Var(units.NewDuration(&c.ClientCache, DefaultClientCache), "client-cache", "how long a client may go on using an index it read, on top of the metadata's max-age (MAAS syncs hourly, then downloads; Incus and LXD keep an index about an hour): with --metadata-cache-control, the shortest --gc-grace accepted for a target behind a cache")
	fs.BoolVar(&c.AcceptShortGrace, "accept-short-grace", false, "accept a --gc-grace shorter than the metadata's max-age plus --client-cache for a target behind a cache: a client or cache holding an index from before a publish may be served 404 for files it lists")
}

// CheckGrace applies the grace rule to a run (sync or gc) with grace into a target that caches
// may stand in front of (behindCache: an S3 target, which is always served over HTTP, or any
// target with a public URL or a CloudFront distribution). A grace shorter than the metadata's
// cache lifetime plus the clients' (--client-cache) lets a reader holding the index from before
// a publish reach files already deleted, and is refused unless --accept-short-grace is given
// (then a warning); a grace of 0 (tests, mirrors no cache serves) is allowed with a warning;
// a negative grace never deletes. A directory target with neither is not checked: ssmirror
// cannot know what serves it. The warning is "" when there is nothing to say.
func (c *Cache) CheckGrace(fs *pflag.FlagSet, grace time.Duration, behindCache bool) (warning string, err error) {
	life, err := sync.CacheLifetime(c.MetadataCacheControl)
	if err != nil {
		return "", Usagef("%s--metadata-cache-control: %v", From(fs, "metadata-cache-control"), err)
	}
	if c.ClientCache < 0 {
		return "", Usagef("%s--client-cache %s: want a duration of at least 0", From(fs, "client-cache"), c.ClientCache)
	}
	need := life + c.ClientCache
	if grace < 0 || grace >= need || !behindCache {
		return "", nil
	}
	why := fmt.Sprintf("the metadata's cache lifetime %s (--metadata-cache-control %q) plus the clients' %s (--client-cache) = %s",
		units.FormatDuration(life), c.MetadataCacheControl, units.FormatDuration(c.ClientCache), units.FormatDuration(need))
	if grace == 0 {
		return fmt.Sprintf("--gc-grace=0 deletes superseded files at once, within %s: a CDN, proxy or client still holding the index from before a publish may be served 404 for files it lists (fine for tests and mirrors no cache serves)", why), nil
	}
	if c.AcceptShortGrace {
		return fmt.Sprintf("--gc-grace %s is shorter than %s; accepted (--accept-short-grace): a reader holding an older index may be served 404 for files it lists", units.FormatDuration(grace), why), nil
	}
	return "", Usagef("%s--gc-grace %s is shorter than %s: a CDN, proxy or client holding the index from before a publish would be served 404 for files it lists. Give --gc-grace %s or more (or lower --metadata-cache-control's max-age or --client-cache), or --accept-short-grace to take that risk",
		From(fs, "gc-grace"), units.FormatDuration(grace), why, units.FormatDuration(need))
}

// DefaultPublicWait bounds how long a run waits for its public URL to serve what it published:
// the default metadata max-age (5 minutes) and a minute more.
const DefaultPublicWait = 6 * time.Minute

// Public are the settings of the read-back through the public URL after a publish.
type Public struct {
	// URLs are the URLs clients read the targets from, one per target in the order the targets
	// are given (the positional TARGET, then each --target); a target past the last has none.
	URLs []string
	// Wait bounds how long the run reads the new metadata back before it reports what is still
	// stale.
	Wait time.Duration
	// Strict makes a public URL still serving stale metadata or missing files fail the run
	// (exit 1) instead of a warning.
	Strict bool
}

// AddFlags adds --public-url, --public-wait and --public-strict to fs.
func (p *Public) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&p.URLs, "public-url", nil, "the URL clients read the target from (the mirror root through the CDN or proxy): after publishing (and the CloudFront invalidation), read the index and the freshness record back through it until they are the ones just published, then check every file held is served; repeat for several targets, one per target in the order the targets are given")
	fs.Var(units.NewDuration(&p.Wait, DefaultPublicWait), "public-wait", "how long to wait for --public-url to serve the new index and freshness record before reporting them stale")
	fs.BoolVar(&p.Strict, "public-strict", false, "fail the run (exit 1) when --public-url still serves stale metadata or misses files after --public-wait (default: a warning)")
}

// Check refuses public URLs that are not http(s), or more of them than there are targets.
func (p *Public) Check(fs *pflag.FlagSet, targets int) error {
	if len(p.URLs) > targets {
		return Usagef("%s%d --public-url for %d target(s): give one per target, in the order the targets are given", From(fs, "public-url"), len(p.URLs), targets)
	}
	for _, raw := range p.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Usagef("%s--public-url %q: want the http(s) URL of the mirror root as clients read it", From(fs, "public-url"), raw)
		}
	}
	if p.Wait < 0 {
		return Usagef("%s--public-wait %s: want at least 0", From(fs, "public-wait"), p.Wait)
	}
	return nil
}

// URL is the public URL of the i-th target ("" when none was given).
func (p *Public) URL(i int) string {
	if i < len(p.URLs) {
		return p.URLs[i]
	}
	return ""
}

// CheckGrace applies Cache.CheckGrace to a sync into targets: behind a cache when one of them
// is a bucket, or a public URL or a CloudFront distribution is given. It checks the public URLs
// too.
func (f *Sync) CheckGrace(fs *pflag.FlagSet, targets []Location) (warning string, err error) {
	if err := f.Public.Check(fs, len(targets)); err != nil {
		return "", err
	}
	behind := len(f.Public.URLs) > 0 || f.CFDistribution != ""
	for _, t := range targets {
		behind = behind || t.Kind == "s3"
	}
	return f.Cache.CheckGrace(fs, f.GCGrace, behind)
}
