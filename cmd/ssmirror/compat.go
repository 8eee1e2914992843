package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/pflag"
)

// compatFlags complete sstream-mirror's command line: --log-file and --no-checksumming-reader.
type compatFlags struct {
	logFile              string
	noChecksummingReader bool
}

func (c *compatFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.logFile, "log-file", "", "write the log (warnings; -v steps; the final error) to FILE, appended, instead of standard error")
	fs.BoolVar(&c.noChecksummingReader, "no-checksumming-reader", false, "accepted for sstream-mirror's command line and ignored: ssmirror always checks every file's size and sha256 while it streams")
}

// openLog returns where the log goes: stderr, or the --log-file opened for appending (a file
// that cannot be opened is a configuration error, found before any transfer). closeLog records
// a failed run's error in the file, then closes it.
func (c *compatFlags) openLog(stderr io.Writer) (io.Writer, func(*slog.Logger, *error), error) {
	if c.logFile == "" {
		return stderr, func(*slog.Logger, *error) {}, nil
	}
	f, err := os.OpenFile(c.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, usagef("--log-file: %w", err)
	}
	return f, func(log *slog.Logger, runErr *error) {
		switch {
		case *runErr == nil:
		case log != nil:
			log.Error("run failed", "error", (*runErr).Error())
		default:
			fmt.Fprintf(f, "ssmirror: %v\n", *runErr)
		}
		if cerr := f.Close(); cerr != nil && *runErr == nil {
			*runErr = fmt.Errorf("--log-file %s: %w", c.logFile, cerr)
		}
	}, nil
}
