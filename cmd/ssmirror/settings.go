package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
)

// The configuration machinery (flag > environment > file, locations, filters, the sync flag
// set) is cmd/internal/cliconfig, shared with cmd/ssmirror-lambda; this is the command's side.

// settings are what a command takes from outside its flags: the positional arguments.
type settings = cliconfig.Settings

// configure fills the flags of fs the command line did not set from the environment, else the
// config file (cliconfig.Configure); a [filter] line naming a flag of any command is explained.
func configure(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) (*settings, error) {
	return cliconfig.Configure(fs, lookupEnv, isSettingKey)
}

// warnUnprotected says so when nothing protects what is read: no signature check and a plain
// HTTP source.
func warnUnprotected(stderr io.Writer, loc cliconfig.Location, keyring bool) {
	if loc.Kind != "http" || !strings.HasPrefix(loc.Root, "http://") || keyring {
		return
	}
	fmt.Fprintf(stderr, "ssmirror: WARNING: %s is read over plain HTTP without checking signatures (no --keyring): anyone on the path can change what is mirrored\n", loc.Root)
}

// userAgent is what ssmirror tells HTTP(S) sources.
func userAgent() string { return "ssmirror/" + version() }
