package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
)

// Exit codes, mapped in one place.
const (
	exitOK      = 0
	exitFailure = 1 // the work failed: see the message
	exitUsage   = 2 // the command line is wrong
)

// usageError marks an error in how the command was called.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

const topUsage = `ssmirror publishes SimpleStreams mirrors (MAAS boot images, cloud images, LXD images)
into S3-compatible buckets or plain directories: content first, verified while it streams,
metadata last, old files deleted only after a grace period.

Usage:
  ssmirror [sync] [flags] SOURCE TARGET [FILTER...]   mirror SOURCE into TARGET
  ssmirror query [flags] SOURCE [FILTER...]           list what a selection matches
  ssmirror verify [flags] TARGET                      audit a published mirror (exit 1 on any fault)
  ssmirror gc [flags] TARGET                          delete what nothing has referenced for --gc-grace
  ssmirror keygen [flags]                             make a signing key for curated mirrors
  ssmirror help [COMMAND]                             help on a command

The sync command line is sstream-mirror's, so the MAAS documentation's commands work with the
name changed:

  ssmirror --keyring=/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg \
      https://images.maas.io/ephemeral-v3/stable/ /srv/maas-images \
      'arch=amd64' 'release~(jammy|noble)' --max=1 --progress

Run 'ssmirror help sync' for the flags.
`

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "sync"
	if len(args) > 0 {
		switch args[0] {
		case "sync", "query", "keygen", "verify", "gc":
			cmd, args = args[0], args[1:]
		case "help":
			if len(args) > 1 {
				args = []string{args[1], "--help"}
				return Main(ctx, args, stdout, stderr)
			}
			fmt.Fprint(stdout, topUsage)
			return exitOK
		case "version", "--version":
			fmt.Fprintln(stdout, "ssmirror", version())
			return exitOK
		}
	}
	if len(args) == 0 && cmd == "sync" && os.Getenv("SSMIRROR_CONFIG") == "" && os.Getenv("SSMIRROR_SOURCE") == "" {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	var err error
	switch cmd {
	case "sync":
		err = runSync(ctx, args, stdout, stderr)
	case "query":
		err = runQuery(ctx, args, stdout, stderr)
	case "keygen":
		err = runKeygen(ctx, args, stdout, stderr)
	case "verify":
		err = runVerify(ctx, args, stdout, stderr)
	case "gc":
		err = runGC(ctx, args, stdout, stderr)
	}
	return report(err, stderr)
}

// report prints err as one line (plus detail lines for multi-file failures) and maps it to an
// exit code.
func report(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, pflag.ErrHelp):
		return exitOK
	}
	fmt.Fprintf(stderr, "ssmirror: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

// newFlagSet makes a flag set whose --help prints usage text followed by the flags.
func newFlagSet(name, usage string, stdout io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprint(stdout, usage)
		fmt.Fprintln(stdout, "\nFlags:")
		fmt.Fprint(stdout, fs.FlagUsages())
	}
	return fs
}

// parse parses flags, turning pflag's errors into usage errors.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// verifyFlags are the signature-checking flags shared by sync and query.
type verifyFlags struct {
	keyring  string
	noVerify bool
}

func (v *verifyFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&v.keyring, "keyring", "", "verify metadata signatures against this keyring (binary or armoured)")
	fs.BoolVarP(&v.noVerify, "no-verify", "U", false, "do not check signatures (strip them unchecked)")
}

func (v *verifyFlags) load() (*sign.Keyring, error) {
	if v.keyring == "" {
		return nil, nil
	}
	if v.noVerify {
		return nil, usagef("--keyring and --no-verify contradict each other")
	}
	return sign.LoadKeyring(v.keyring)
}

// newLogger logs to stderr: warnings by default, info with -v, debug with -vv; text or JSON.
func newLogger(stderr io.Writer, verbosity int, format string) (*slog.Logger, error) {
	level := slog.LevelWarn
	switch {
	case verbosity == 1:
		level = slog.LevelInfo
	case verbosity >= 2:
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, hopts)), nil
	}
	return nil, usagef("--log-format must be text or json, not %q", format)
}

// humanBytes prints a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// readPassphrase gets a signing key's passphrase from a file or the environment, never from a
// flag value (which any user can read in ps).
func readPassphrase(file string) ([]byte, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading the passphrase: %w", err)
		}
		return []byte(strings.TrimRight(string(data), "\r\n")), nil
	}
	return []byte(os.Getenv("SSMIRROR_SIGNING_PASSPHRASE")), nil
}

func describe(s store.Store) string { return store.Describe(s) }
