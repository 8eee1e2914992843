package sync

import (
	"cmp"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync/internal/tee"
)

// DefaultGCGrace is how long an object nothing references is kept before it is deleted. It has
// to outlive every reader that may still hold an older generation of the metadata: a CDN caching
// the index (DefaultMetadataCacheControl: 5 minutes), a MAAS region that syncs hourly and then
// spends hours downloading a release over a slow link, and racks that sync from the region every
// 5 minutes. A day covers all of them with room; the cost is one superseded version per product
// kept for a day.
const DefaultGCGrace = 24 * time.Hour

// Cache-Control defaults: metadata changes at every publish, content never changes at a path.
const (
	DefaultMetadataCacheControl = "public, max-age=300"
	DefaultContentCacheControl  = "public, max-age=31536000, immutable"
)

// DefaultConcurrency is how many files a run transfers at once when Options.Concurrency is 0.
const DefaultConcurrency = 4

// Options configure a run, in five groups: what is mirrored (Selection), how the target is
// written (Publishing), what a run refuses (Limits), how the transfer is carried out (Tuning)
// and what the caller is told (Hooks). They are configuration only: Run reads them and never
// changes them, and what a run holds while it works is its own (run). A field documents the
// default its zero value stands for where zero could not mean anything else (Concurrency, the
// limits); GCGrace's zero means zero. The run works from the settled copy (settled), in which
// every default is filled in once.
type Options struct {
	Selection
	Publishing
	Limits
	Tuning
	Hooks
}

// Selection is what a run mirrors: where upstream's catalogue starts, how it is verified, and
// which of its items are selected.
type Selection struct {
	// StartPath is the metadata file to start from (default streams/v1/index.sjson).
	StartPath    string
	Verification Verification
	Filters      streams.Filters
	// FilterGroups select items matching any one group (see PlanInput.FilterGroups).
	FilterGroups []streams.Filters
	Max          int
	Keep         bool
	// AllowEmpty lets a run go on when the filters (or a filter group) select no item upstream;
	// otherwise such a run fails before it writes anything (see CheckSelection).
	AllowEmpty bool
	// Prune releases what the current selection does not cover.
	Prune bool
}

// Publishing is how a run writes the target: whether it writes at all, content or only
// metadata, verbatim or curated, with which headers, under which lease, and how long what it
// no longer references is kept.
type Publishing struct {
	// DryRun plans and reports without changing anything.
	DryRun bool
	// NoItemDownload publishes metadata without fetching content (verbatim mode only).
	NoItemDownload bool
	// Signer, when set, selects curated mode: the catalogue is rewritten to list exactly what the
	// mirror holds and signed with this key.
	Signer *sign.Signer
	// VerifyExisting re-reads objects already present instead of trusting recorded hashes.
	VerifyExisting bool
	// AllowModeChange lets a run publish a target in another mode than the one it is published
	// in (verbatim, or curated with another key); otherwise such a run is refused
	// (ModeChangeError) before it writes anything.
	AllowModeChange bool
	// PurgeVersions: on a bucket with versioning or object lock, where a delete only adds a
	// delete marker and the bytes stay as a noncurrent version, deleting an object also deletes
	// its noncurrent versions whose ETag is the one ssmirror recorded for it (the bytes it wrote
	// itself; versions written by others, and versions under retention, stay), then its delete
	// markers once no version is left. Without it (or a lifecycle rule expiring noncurrent
	// versions) garbage collection there frees nothing, and the report says so.
	PurgeVersions bool
	// GCGrace is how long an object nothing references is kept before it is deleted: zero deletes
	// it at the end of the run that stopped referencing it, negative never deletes it. Zero means
	// zero: callers that want the default set DefaultGCGrace (the commands' flags do).
	GCGrace time.Duration
	// MetadataCacheControl and ContentCacheControl override the Cache-Control defaults ("":
	// DefaultMetadataCacheControl, DefaultContentCacheControl).
	MetadataCacheControl string
	ContentCacheControl  string
	// Lock configures the target's lease lock (one writer per target). Dry runs take no lock.
	Lock LockOptions
	// Freshness is what the freshness record (FreshnessKey) says of where the mirror comes from
	// and what wrote it.
	Freshness FreshnessInfo
}

// Limits are what a run refuses: metadata, files and transfers beyond reason.
type Limits struct {
	// MetadataLimit caps one metadata file's size (default DefaultMetadataLimit), and four
	// times it the whole catalogue's.
	MetadataLimit int64
	// MaxFileSize refuses, before anything is written, a selection holding an item declared
	// larger (0: DefaultMaxFileSize; negative: no limit).
	MaxFileSize int64
	// MinRate is the slowest a file may arrive, in bytes per second: each file must be in within
	// FileDeadlineBase plus its size at this rate (0: DefaultMinRate; negative: no deadline).
	MinRate int64
	// FileDeadlineBase is the time every file gets on top of its size at MinRate (0:
	// DefaultFileDeadlineBase).
	FileDeadlineBase time.Duration
}

// Tuning is how the transfer is carried out: how many files at once, in how many ranges, and
// with how much memory for the files a fan-out run streams to several targets.
type Tuning struct {
	// Concurrency is the number of files transferred at once (0: DefaultConcurrency).
	Concurrency int
	// RangeStreams is the most range streams (connections, each fetching one chunk at a time)
	// one large file is given from a source that serves bounded ranges (HTTP), besides its own
	// connection; the chunks are handed on in order so the file is still hashed and uploaded as
	// one stream. 0 means DefaultRangeStreams; 1 fetches every file with one request. Files
	// shorter than four chunks always take one request.
	RangeStreams int
	// RangeChunk is the size of one range (0: DefaultRangeChunk). Each range stream holds one
	// chunk in memory.
	RangeChunk int64
	// RangeConnections is how many range streams the files of a run share (0: RangeFiles ×
	// RangeStreams). Every large file starts on one connection of its own; while its connection
	// brings less than about 48 MiB/s and streams are free it is given more, the file on the
	// fewest streams (then with the most bytes left) first, and a stream a file no longer needs
	// goes to another. On a link found that slow, streams no large file wants carry more files
	// at once than Concurrency, one file each. A run opens at most Concurrency +
	// RangeConnections connections to the source and holds at most RangeConnections chunks.
	RangeConnections int
	// RangeFiles only sizes the default RangeConnections (0: DefaultRangeFiles): it no longer
	// bounds the files fetched in ranges, every large file in flight may be.
	RangeFiles int
	// FanOutBuffer is, in a run with several targets (RunTargets), the memory of the chunks of
	// the files streamed to several targets at once: one budget for the run, whatever the number
	// of targets and of files in flight (0: DefaultFanOutBuffer), raised to what Concurrency
	// files need at once (a fan-out keeps as many files in flight as a run into one target).
	// Each such file reserves its share before it is opened (this over the files in flight, but
	// at least one S3 part plus two chunks, and at most the file) and waits for it holding
	// nothing; the targets of a file share its chunks (S3 targets send their parts from them,
	// without copies, and take no part buffers of their own in a fan-out). A target holding
	// a file's chunks back (more than half its share behind the target nearest the front, or
	// holding chunks for parts in flight while another waits) is waited for while it keeps up
	// MinRate (DefaultMinRate with no deadline): a fan-out goes at the pace of its slowest
	// target. One that falls below it, or stalls, is given up on for the run (ErrFellBehind)
	// once it has held the others back 5 seconds beyond what its writing at MinRate accounts
	// for, plus the bytes of its parts in flight at MinRate.
	FanOutBuffer int64
}

// Hooks are what the caller hears of a run (and the clock it runs by).
type Hooks struct {
	// Progress, when set, is told about transfers as they happen.
	Progress *Progress
	// Log receives what the run does (nil: nothing is logged).
	Log *slog.Logger
	// Now is the clock (default time.Now); tests move it to pass the grace period.
	Now func() time.Time
	// OnTransfer, when set, is called as the transfer stage starts with the most bytes of
	// buffers the stage may hold at once (the ranged downloads' budget and the target's
	// BufferBudget); the function it returns (nil: none) is called when the stage ends. A command,
	// which owns its process, sets a soft memory limit with it (cmd/ssmirror); the library itself
	// changes no process-wide setting.
	OnTransfer func(buffers int64) (done func())
}

// settled returns a copy of o with every default filled in, once for the run: the zero values
// that stand for a default (a nil Log or Progress or clock, a zero Concurrency, limit, cache
// header or range setting) become what they stand for, and a negative MinRate becomes -1 (no
// deadline). In the settled copy, RangeConnections 0 means ranged downloads are off (RangeFiles
// only sized it). Nothing else in the run settles a default.
func (o Options) settled() Options {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.MetadataCacheControl = cmp.Or(o.MetadataCacheControl, DefaultMetadataCacheControl)
	o.ContentCacheControl = cmp.Or(o.ContentCacheControl, DefaultContentCacheControl)
	if o.MetadataLimit <= 0 {
		o.MetadataLimit = DefaultMetadataLimit
	}
	if o.MaxFileSize == 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	switch {
	case o.MinRate < 0:
		o.MinRate = -1
	case o.MinRate == 0:
		o.MinRate = DefaultMinRate
	}
	if o.FileDeadlineBase <= 0 {
		o.FileDeadlineBase = DefaultFileDeadlineBase
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.RangeStreams <= 0 {
		o.RangeStreams = DefaultRangeStreams
	}
	if o.RangeChunk <= 0 {
		o.RangeChunk = DefaultRangeChunk
	}
	switch {
	case o.RangeStreams <= 1:
		o.RangeConnections = 0
	case o.RangeConnections <= 0:
		o.RangeConnections = cmp.Or(max(o.RangeFiles, 0), DefaultRangeFiles) * o.RangeStreams
	}
	if o.FanOutBuffer > 0 {
		o.FanOutBuffer = max(o.FanOutBuffer, tee.Chunk)
	} else {
		o.FanOutBuffer = DefaultFanOutBuffer
	}
	return o
}

// DefaultMaxFileSize is the largest declared item size a run accepts (Options.MaxFileSize): the
// biggest MAAS images are a few GB, and a catalogue that declares more is refused before anything
// is written.
const DefaultMaxFileSize = 64 << 30

// Per-file deadlines (Options.MinRate, FileDeadlineBase). The stall timeout of the HTTP source
// only catches a body that stops; one that drips a byte every few seconds would hold the target's
// lock for ever. Every file must arrive within FileDeadlineBase plus its size at MinRate: with
// the defaults a 1 GiB image has about 4 h 30 min, a metadata file read as fast as it must be.
const (
	DefaultMinRate          = 64 << 10 // bytes per second
	DefaultFileDeadlineBase = 5 * time.Minute
)

// Defaults for ranged downloads (Options.RangeStreams, RangeChunk, RangeFiles). Measured with
// scripts/bench over scripts/linkemu (20 MB/s per connection, 30 ms), into MinIO. One ~1 GB
// file: 5 × 4 MiB took 12.8 s at 81 MB peak RSS, 4 × 4 MiB 15.8 s at 76 MB, 4 × 8 MiB 15.0 s
// at 111 MB, 6 × 2 MiB 12.1 s at 61 MB; one connection (curl) 52.7 s. The 1.5 GB stream
// (4 files at once, 8 MiB parts, 24 MiB of part buffers): one file ranged at 5 × 4 MiB 16.7 s,
// two at 6 × 2 MiB 11.7-13.3 s and 91 MB, three at 6 × 2 MiB 9.7 s but 104 MB, three at
// 5 × 2 MiB 10.1-10.2 s and 100 MB (32 MiB of part buffers); rclone 21.1 s. With the shared
// pool (issue 13; 15 streams = 3 × 5, into a directory, a loaded machine): four 64 MB files at
// 2 MB/s per connection + 30 ms took 9.5-10.1 s (the per-file budget before: 33-36 s; rclone
// 32 s); 24 streams of at most 8 per file 8.3 s.
const (
	DefaultRangeStreams = 5
	DefaultRangeChunk   = 2 << 20
	DefaultRangeFiles   = 3
)

// DefaultFanOutBuffer is Options.FanOutBuffer's default: the run's budget of tee chunks.
// Measured with scripts/bench (the 1.5 GB bench stream from nginx into two MinIO buckets and a
// directory, on a shared 2-CPU machine, 2 runs each): 32 MiB peaks at 121 MB RSS in a median
// 11.7 s, 64 MiB at 153 MB in 10.5 s (one target: 93 MB, 4.3 s); no target given up on.
const DefaultFanOutBuffer = 32 << 20

// FreshnessInfo is what the caller tells the run to put in the freshness record that the run
// cannot know.
type FreshnessInfo struct {
	// Upstream is where the mirror is read from, as shown (without user info).
	Upstream string
	// Generator names the program and its version ("ssmirror v1.2.3").
	Generator string
}

// ErrMetadataOnlyCurated is Run's error for Options with both NoItemDownload and a Signer.
var ErrMetadataOnlyCurated = errors.New("a metadata-only run (NoItemDownload) cannot curate (Signer): a curated catalogue lists only what the mirror holds")

// DefaultMetadataLimit caps the size of one metadata file read from a source.
const DefaultMetadataLimit = 256 << 20

// Verification says how metadata signatures are treated.
type Verification struct {
	// Keyring, when set, is what every metadata file must be signed by.
	Keyring *sign.Keyring
	// NoVerify strips signatures without checking them.
	NoVerify bool
}
