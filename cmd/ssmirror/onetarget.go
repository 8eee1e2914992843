package main

import (
	"context"
	"os"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/cmd/internal/job"
)

// The commands on one existing mirror (status, verify, gc): the flags that pick its
// configuration, and its target configured and opened as sync would.

// addOneTargetFlags adds the flags of a command on one existing mirror (status, verify, gc)
// that pick its configuration: --config, and --only-mirror, the [mirror] section whose target
// and settings it takes.
func addOneTargetFlags(fs *pflag.FlagSet) *string {
	var mirror string
	fs.StringVar(&mirror, cliconfig.OnlyMirrorFlag, "", "with a config file of [mirror NAME] sections: the mirror whose target and settings to use (default: the section listing TARGET)")
	cliconfig.AddConfigFlag(fs)
	return &mirror
}

// openOneTarget configures a command on one existing mirror (job.ConfigureOne: flags,
// $SSMIRROR_*, the config file, as sync reads them) and opens its target, which must exist.
// With noStart, a target naming a metadata file is refused. check, when set, checks the
// command's own settings once configured, before the target is opened.
func openOneTarget(ctx context.Context, fs *pflag.FlagSet, s3f *cliconfig.S3Flags, command, mirror string, noStart bool, check func() error) (job.One, error) {
	p, err := job.ConfigureOne(fs, os.LookupEnv, isSettingKey, mirror, command, fs.Args())
	if err != nil {
		return job.One{}, err
	}
	if err := s3f.Check(fs); err != nil {
		return job.One{}, err
	}
	if check != nil {
		if err := check(); err != nil {
			return job.One{}, err
		}
	}
	if noStart && p.Loc.Start != "" {
		return job.One{}, usagef("the target names a metadata file (%s); name the mirror root", p.Loc.Start)
	}
	dst, err := job.OpenExisting(ctx, p, s3f)
	if err != nil {
		return job.One{}, err
	}
	return job.One{Place: p, Store: dst}, nil
}

// hideUploadFlags hides, in the help of a command that uploads nothing (verify, status, gc), the
// S3 flags only uploads use. They are still accepted: the environment and a config file shared
// with sync may set them.
func hideUploadFlags(fs *pflag.FlagSet) {
	for _, name := range []string{"part-size", "part-concurrency", "upload-buffers", "upload-checksum"} {
		fs.MarkHidden(name)
	}
}
