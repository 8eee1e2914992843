package main

import (
	"context"
	"io"

	"github.com/spf13/pflag"
)

// The commands: the table Main dispatches through, from which the help, the shell completion,
// the man page and the set of config file keys are made too.

// command is a subcommand: what Main runs, and what the help, completion and man page say of it.
type command struct {
	name, summary string
	usage         string                                                      // the command's help text ("" for none)
	run           func(context.Context, []string, io.Writer, io.Writer) error // nil: takes no flags
}

// commandTable lists every command, the default (sync) first.
func commandTable() []command {
	return []command{
		{"sync", "mirror SOURCE into TARGET (the default command)", syncUsage, runSync},
		{"query", "list what a selection matches", queryUsage, runQuery},
		{"verify", "audit a published mirror", verifyUsage, runVerify},
		{"gc", "delete what nothing has referenced for --gc-grace", gcUsage, runGC},
		{"status", "show what a mirror holds, its lock and what waits for deletion", statusUsage, runStatus},
		{"check", "read a mirror through its public URL as a site would", checkUsage, runCheck},
		{"keygen", "make a signing key for curated mirrors", keygenUsage, runKeygen},
		{"version", "print the version and VCS revision", "", nil},
		{"completion", "print a shell completion script (bash, zsh or fish)", completionUsage, nil},
		{"man", "print the man page (roff)", "", nil},
		{"help", "help on a command", "", nil},
	}
}

// lookupCommand finds the command called name.
func lookupCommand(name string) (command, bool) {
	for _, c := range commandTable() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// commandNames are the commands' names, in the table's order.
func commandNames() []string {
	var names []string
	for _, c := range commandTable() {
		names = append(names, c.name)
	}
	return names
}

// commandFlags returns the flag set c defines, read by running it with --help into nothing.
func commandFlags(c command) *pflag.FlagSet {
	if c.run == nil {
		return pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	}
	var got *pflag.FlagSet
	flagSetHook = func(fs *pflag.FlagSet) {
		if got == nil {
			got = fs
		}
	}
	defer func() { flagSetHook = nil }()
	c.run(context.Background(), []string{"--help"}, io.Discard, io.Discard)
	if got == nil {
		return pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	}
	return got
}

const topUsage = `ssmirror publishes SimpleStreams mirrors (MAAS boot images, cloud images, LXD images)
into S3-compatible buckets or plain directories: content first, verified while it streams,
metadata last, old files deleted only after a grace period.

Usage:
  ssmirror [sync] [flags] SOURCE TARGET [FILTER...]   mirror SOURCE into TARGET
  ssmirror query [flags] SOURCE [FILTER...]           list what a selection matches
  ssmirror verify [flags] TARGET                      audit a published mirror (exit 1 on any fault)
  ssmirror gc [flags] TARGET                          delete what nothing has referenced for --gc-grace
  ssmirror status [flags] TARGET                      what a mirror holds, its lock, what waits for deletion
  ssmirror check [flags] URL [FILTER...]              read a mirror through its public URL as a site would
  ssmirror keygen [flags]                             make a signing key for curated mirrors
  ssmirror version                                    the version and VCS revision of this binary
  ssmirror completion bash|zsh|fish                   a shell completion script
  ssmirror man                                        the man page (roff): ssmirror man | man -l -
  ssmirror help [COMMAND]                             help on a command

The sync command line is sstream-mirror's, so the MAAS documentation's commands work with the
name changed:

  ssmirror --keyring=/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg \
      https://images.maas.io/ephemeral-v3/stable/ /srv/maas-images \
      'arch=amd64' 'release~(jammy|noble)' --max=1 --progress

Run 'ssmirror help sync' for the flags.
`

const completionUsage = `Usage: ssmirror completion bash|zsh|fish

Print a completion script for the shell. Install it with, for example:
  ssmirror completion bash > /etc/bash_completion.d/ssmirror
  ssmirror completion zsh > "${fpath[1]}/_ssmirror"
  ssmirror completion fish > ~/.config/fish/completions/ssmirror.fish
`
