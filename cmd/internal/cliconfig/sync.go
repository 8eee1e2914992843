package cliconfig

import (
	"bytes"
	"errors"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/internal/units"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store/s3store"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

// Verify are the signature-checking flags (sync and query).
type Verify struct {
	Keyring  string
	NoVerify bool
}

// AddFlags adds --keyring and --no-verify to fs.
func (v *Verify) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&v.Keyring, "keyring", "", "verify metadata signatures against this keyring (binary or armoured)")
	fs.BoolVarP(&v.NoVerify, "no-verify", "U", false, "do not check signatures (strip them unchecked)")
}

// Load reads the keyring; without --keyring it is nil.
func (v *Verify) Load() (*sign.Keyring, error) {
	if v.Keyring == "" {
		return nil, nil
	}
	if v.NoVerify {
		return nil, Usagef("--keyring and --no-verify contradict each other")
	}
	kr, err := sign.LoadKeyring(v.Keyring)
	if err != nil {
		return nil, UsageError{err} // a configuration error, not a failed run
	}
	return kr, nil
}

// Sync are the settings of a sync that both binaries read: what is mirrored and how, where from
// and where to. The ssmirror command adds its own flags for output (progress, logs, metrics);
// the Lambda function adds its own for what only it has (the safety margin, an inline keyring).
// A flag added here is a setting of both, with its environment variable and config key.
type Sync struct {
	Verify          Verify
	S3              S3Flags
	TLS             TLSFlags
	Max             int
	Keep            bool
	AllowEmpty      bool
	Path            string
	DryRun          bool
	NoItemDownload  bool
	Mirrors         []string
	SigningKey      string
	PassphraseFile  string
	AllowModeChange bool
	Concurrency     int
	RangeStreams    int
	RangeChunk      int64
	RangeFiles      int
	RangeConns      int
	GCGrace         time.Duration
	GCPurgeVersions bool
	Prune           bool
	VerifyExisting  bool
	MetadataMaxSize int64
	MaxFileSize     int64
	MinRate         int64
	Bwlimit         int64
	LockTimeout     time.Duration
	LockTTL         time.Duration
	CFDistribution  string
	CFPathPrefix    string
	// Sections pick and pace the [mirror NAME] sections of a config file.
	Sections MirrorFlags
	// Targets are the --target flags: targets added to the positional TARGET (a fan-out run).
	Targets      []string
	FanOutBuffer int64
	// Cache and Public are what readers see through caches: the metadata's Cache-Control and
	// the grace rule it makes (CheckGrace), and the read-back through the public URL.
	Cache  Cache
	Public Public
}

// AddFlags adds the sync flags to fs, and --config.
func (f *Sync) AddFlags(fs *pflag.FlagSet) {
	f.Verify.AddFlags(fs)
	fs.IntVar(&f.Max, "max", 0, "keep at most N versions per product (default: all; 0, which sstream-mirror reads as none, is refused)")
	fs.BoolVar(&f.Keep, "keep", false, "keep versions that vanished upstream, up to --max")
	fs.BoolVar(&f.AllowEmpty, "allow-empty", false, "run even when the filters (or a [filter] group) select no item (otherwise refused before anything is written)")
	fs.StringVar(&f.Path, "path", "", "start from this metadata path instead of streams/v1/index.sjson")
	fs.BoolVar(&f.DryRun, "dry-run", false, "print what would be added (+) and removed (-) as sstream-mirror does (sizes in whole MiB, then the net change), change nothing; exact totals on stderr")
	fs.BoolVar(&f.NoItemDownload, "no-item-download", false, "publish metadata only (verbatim mode)")
	fs.StringArrayVar(&f.Targets, TargetFlag, nil, "also publish to this target (repeatable): one run, upstream read once, each file fetched once for all targets, each target locked, published and collected on its own; a target that fails does not stop the others (the run exits 1 naming it)")
	fs.Var(units.NewSize(&f.FanOutBuffer, sync.DefaultFanOutBuffer), "fan-out-buffer", "with several targets: memory (as 64MiB or bytes) for the chunks of the files streamed to the targets, one budget for the run whatever the number of targets and files (at least what --concurrency files need at once: one part plus two 256KiB chunks each); a target holding a file back beyond its share holds the others back at most 5s per file, then is given up on for the run")
	fs.StringArrayVar(&f.Mirrors, "mirror", nil, "extra base URL tried when SOURCE answers 404 (repeatable)")
	fs.StringVar(&f.SigningKey, "signing-key", "", "curated mode: rewrite the catalogue to what the mirror holds and sign it with this secret key (armoured)")
	fs.BoolVar(&f.AllowModeChange, "allow-mode-change", false, "publish a target in another mode than it is published in (verbatim, or curated with another key), which its clients' keyrings may reject; otherwise such a run is refused (exit 2)")
	fs.StringVar(&f.PassphraseFile, "signing-passphrase-file", "", "file holding the signing key's passphrase (default: $SSMIRROR_SIGNING_PASSPHRASE)")
	fs.IntVar(&f.Concurrency, "concurrency", 4, "files transferred at once")
	fs.IntVar(&f.RangeStreams, "range-streams", sync.DefaultRangeStreams, "most extra range connections one large file from an HTTP(S) source is given while its own connection is slow (1: one request per file)")
	fs.Var(units.NewSize(&f.RangeChunk, sync.DefaultRangeChunk), "range-chunk", "size of one range (as 2MiB or bytes); each range connection holds one in memory")
	fs.IntVar(&f.RangeConns, "range-connections", 0, "range connections shared by all files in flight, each holding one range-chunk buffer; on a slow link, those no large file wants carry more small files at once, all of them at first, half of them once that half is found to bring as much (a link limited in total) (0: range-files × range-streams); at most concurrency + this many connections to the source")
	fs.IntVar(&f.RangeFiles, "range-files", sync.DefaultRangeFiles, "sizes the default --range-connections (range-files × range-streams); no longer limits which files are fetched in ranges")
	fs.Var(units.NewDuration(&f.GCGrace, sync.DefaultGCGrace), "gc-grace", "keep objects nothing references for this long (as 3d, 12h) before deleting them (negative: never delete)")
	fs.BoolVar(&f.GCPurgeVersions, "gc-purge-versions", false, "on a bucket with versioning or object lock, where a delete only adds a delete marker, also delete the noncurrent versions ssmirror itself wrote of what garbage collection deletes (otherwise it frees nothing there)")
	fs.BoolVar(&f.Prune, "prune", false, "release what the current selection does not cover (otherwise runs accumulate)")
	fs.BoolVar(&f.VerifyExisting, "verify-existing", false, "re-read objects already in the target instead of trusting recorded hashes")
	fs.Var(units.NewSize(&f.MetadataMaxSize, sync.DefaultMetadataLimit), "metadata-max-size", "refuse metadata files larger than this (as 256MiB or bytes), and a catalogue of more than four times this in all")
	fs.Var(units.NewLimit(&f.MaxFileSize, sync.DefaultMaxFileSize), "max-file-size", "refuse, before writing anything, a selection holding an item declared larger than this (as 64GiB or bytes; none: no limit)")
	fs.Var(units.NewLimit(&f.MinRate, sync.DefaultMinRate), "min-rate", "per-file deadline: every file (and metadata file) must arrive within 5 minutes plus its size at this rate a second (as 64KiB or bytes; none: no deadline); in a fan-out, a target slower than this (64KiB with none) that holds the others back is given up on for the run")
	fs.Var(units.NewLimit(&f.Bwlimit, 0), "bwlimit", "download at most this many bytes a second from the source, all connections together (as 20MiB; default none: no limit)")
	fs.Var(units.NewDuration(&f.LockTimeout, 0), "lock-timeout", "wait this long for another run's lock on the target before giving up (default: do not wait)")
	fs.Var(units.NewDuration(&f.LockTTL, sync.DefaultLockTTL), "lock-ttl", "lease of the target's lock (as 10m): renewed while the run works, taken over by another run only once it expires unprovably alive (a holder paused longer than this loses the target and writes nothing more)")
	f.S3.AddFlags(fs)
	f.TLS.AddFlags(fs)
	fs.StringVar(&f.CFDistribution, "cloudfront-distribution", "", "after a publish that wrote metadata, invalidate its paths in this CloudFront distribution (id)")
	fs.StringVar(&f.CFPathPrefix, "cloudfront-path-prefix", "", `path of the mirror root as the distribution serves it (default: "/" + the S3 prefix)`)
	f.Cache.AddFlags(fs)
	f.Public.AddFlags(fs)
	f.Sections.AddFlags(fs)
	AddConfigFlag(fs)
}

// Check refuses settings that contradict each other or would be misread, before any work. fs
// is the flag set AddFlags filled (after Configure): messages name where each setting came
// from ($SSMIRROR_MAX, or the config file's line) when not from the command line.
func (f *Sync) Check(fs *pflag.FlagSet) error {
	if err := CheckMax(fs, f.Max); err != nil {
		return err
	}
	if err := CheckLockTTL(fs, f.LockTTL); err != nil {
		return err
	}
	for _, m := range f.Mirrors {
		if u, err := url.Parse(m); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Usagef("%s--mirror %s: want the base URL (http:// or https://) of another copy of SOURCE, tried when SOURCE answers 404; to run one [mirror] section of the config file, did you mean --%s %s?", From(fs, "mirror"), m, OnlyMirrorFlag, m)
		}
	}
	if f.Concurrency < 1 {
		return Usagef("%s--concurrency %d: want at least 1", From(fs, "concurrency"), f.Concurrency)
	}
	if f.Sections.Parallel < 1 {
		return Usagef("%s--%s %d: want at least 1", From(fs, ParallelMirrorsFlag), ParallelMirrorsFlag, f.Sections.Parallel)
	}
	if _, err := s3store.ParseChecksum(f.S3.uploadChecksum); err != nil {
		return Usagef("%s--upload-checksum: %v", From(fs, "upload-checksum"), err)
	}
	if err := f.S3.Check(fs); err != nil {
		return err
	}
	// The files in flight share the rate; each must still arrive at --min-rate.
	if n := int64(max(f.Concurrency, 1)); f.Bwlimit > 0 && f.MinRate > 0 && f.Bwlimit < f.MinRate*n {
		return Usagef("--bwlimit %s shared by --concurrency %d files is below --min-rate %s each: large files would miss their deadline (lower --concurrency or --min-rate, or set --min-rate none)", units.FormatSize(f.Bwlimit), n, units.FormatSize(f.MinRate))
	}
	return nil
}

// CheckMax refuses a --max that sstream-mirror and ssmirror would read differently. In
// sstream-mirror, --max 0 means "hold no version": simplestreams' resolve_work keeps the newest
// maxnum versions, so with 0 it adds none and removes every version already held. ssmirror's
// default is every version; rather than publish an empty mirror or silently do the opposite of
// what the sstream-mirror command line meant, an explicit 0 (flag, $SSMIRROR_MAX or config) is
// refused.
func CheckMax(fs *pflag.FlagSet, n int) error {
	switch {
	case n < 0:
		return Usagef("%s--max %d: want a number of versions per product, at least 1 (leave --max out to keep every version)", From(fs, "max"), n)
	case n == 0 && fs.Changed("max"):
		return Usagef("%s--max=0 is refused: sstream-mirror reads it as \"hold no version\" (it removes every version held and adds none), while ssmirror's default is every version; leave --max out to keep them all, or give at least 1", From(fs, "max"))
	}
	return nil
}

// CheckLockTTL refuses a --lock-ttl too short to renew.
func CheckLockTTL(fs *pflag.FlagSet, ttl time.Duration) error {
	if ttl < sync.MinLockTTL {
		return Usagef("%s--lock-ttl %s is shorter than %s", From(fs, "lock-ttl"), ttl, sync.MinLockTTL)
	}
	return nil
}

// LoadSigner loads --signing-key (nil without one). Its passphrase comes from
// --signing-passphrase-file, else $SSMIRROR_SIGNING_PASSPHRASE (looked up with lookupEnv), never
// from a flag value, which any user can read in ps.
func (f *Sync) LoadSigner(lookupEnv func(string) (string, bool)) (*sign.Signer, error) {
	if f.SigningKey == "" {
		return nil, nil
	}
	pass, err := ReadPassphrase(f.PassphraseFile, lookupEnv)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(f.SigningKey)
	if err != nil {
		return nil, Usagef("signing key: %w", err)
	}
	signer, err := sign.LoadSigner(bytes.NewReader(data), pass)
	switch {
	case errors.Is(err, sign.ErrPassphraseRequired):
		return nil, Usagef("signing key %s: %w: give its passphrase in a file with --signing-passphrase-file FILE, or in $SSMIRROR_SIGNING_PASSPHRASE", f.SigningKey, err)
	case errors.Is(err, sign.ErrWrongPassphrase):
		from := "$SSMIRROR_SIGNING_PASSPHRASE"
		if f.PassphraseFile != "" {
			from = "--signing-passphrase-file " + f.PassphraseFile
		}
		return nil, Usagef("signing key %s: %w (the passphrase came from %s)", f.SigningKey, err, from)
	case err != nil:
		return nil, Usagef("signing key %s: %w", f.SigningKey, err)
	}
	return signer, nil
}

// ReadPassphrase gets a signing key's passphrase from a file (its line end dropped), else from
// $SSMIRROR_SIGNING_PASSPHRASE taken as is (blanks may belong to it); never from a flag value,
// which any user can read in ps.
func ReadPassphrase(file string, lookupEnv func(string) (string, bool)) ([]byte, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, Usagef("reading the passphrase: %w", err)
		}
		return []byte(strings.TrimRight(string(data), "\r\n")), nil
	}
	v, _ := lookupEnv(EnvPrefix + "SIGNING_PASSPHRASE")
	return []byte(v), nil
}

// Options are the sync.Options these settings make for a run from src (whose location may name
// the start file) with the filter groups given (an item is selected when any group matches).
// The caller adds what is not a setting: the logger, the progress, the memory limit.
func (f *Sync) Options(src Location, groups []streams.Filters, keyring *sign.Keyring, signer *sign.Signer) sync.Options {
	start := src.Start
	if f.Path != "" {
		start = f.Path
	}
	opts := sync.Options{
		Selection: sync.Selection{
			StartPath:    start,
			Verification: sync.Verification{Keyring: keyring, NoVerify: f.Verify.NoVerify},
			Max:          f.Max,
			Keep:         f.Keep,
			AllowEmpty:   f.AllowEmpty,
			Prune:        f.Prune,
		},
		Publishing: sync.Publishing{
			DryRun:          f.DryRun,
			NoItemDownload:  f.NoItemDownload,
			Signer:          signer,
			AllowModeChange: f.AllowModeChange,
			VerifyExisting:  f.VerifyExisting,
			GCGrace:         f.GCGrace,
			PurgeVersions:   f.GCPurgeVersions,
			Lock:            sync.LockOptions{Wait: f.LockTimeout, TTL: f.LockTTL},
		},
		Limits: sync.Limits{
			MetadataLimit: f.MetadataMaxSize,
			MaxFileSize:   f.MaxFileSize,
			MinRate:       f.MinRate,
		},
		Tuning: sync.Tuning{
			Concurrency:      f.Concurrency,
			RangeStreams:     f.RangeStreams,
			RangeChunk:       f.RangeChunk,
			RangeFiles:       f.RangeFiles,
			RangeConnections: f.RangeConns,
			FanOutBuffer:     f.FanOutBuffer,
		},
	}
	opts.MetadataCacheControl = f.Cache.MetadataCacheControl
	switch len(groups) {
	case 0:
	case 1:
		opts.Filters = groups[0]
	default:
		opts.FilterGroups = groups
	}
	return opts
}
