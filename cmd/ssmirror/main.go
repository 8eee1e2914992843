// Command ssmirror publishes SimpleStreams mirrors (MAAS boot images, Ubuntu cloud images, LXD
// images) into S3-compatible buckets or directories. Run `ssmirror --help`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/ssmirror/ssmirror/streams"
)

func main() {
	ctx, stop := notifyContext(context.Background())
	stopProfile := startCPUProfile(os.Getenv("SSMIRROR_CPUPROFILE"))
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// notifyContext returns a context cancelled, with an interrupted cause naming the signal, when
// SIGINT or SIGTERM arrives (exitCode turns that into 130 or 143). Later signals are absorbed:
// the run is already stopping, and releases its lock on the way out.
func notifyContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			sig, _ := s.(syscall.Signal)
			cancel(interrupted{sig})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		cancel(nil)
		signal.Stop(ch)
	}
}

// startCPUProfile writes a CPU profile of the whole run to path, when it is set: a diagnostic
// for performance work (go tool pprof), not an operator feature.
func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ssmirror: SSMIRROR_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, _ := lookupCommand("sync") // the default command
	if len(args) > 0 {
		c, ok := lookupCommand(args[0])
		switch {
		case ok && c.run != nil:
			cmd, args = c, args[1:]
		case ok || args[0] == "--version":
			return runBuiltin(ctx, args, stdout, stderr)
		default:
			if err := checkCommandWord(args[0]); err != nil {
				return report(ctx, err, stderr)
			}
		}
	}
	if len(args) == 0 && cmd.name == "sync" && os.Getenv("SSMIRROR_CONFIG") == "" && os.Getenv("SSMIRROR_SOURCE") == "" {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	if cmd.name != "sync" { // sync warns once its log format is known
		warnAll(stderr, unknownEnv(os.Environ()))
	}
	return report(ctx, cmd.run(ctx, args, stdout, stderr), stderr)
}

// runBuiltin runs a command of the table that takes no flags (help, version, completion, man)
// and returns the exit code.
func runBuiltin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch args[0] {
	case "help":
		if len(args) > 1 {
			return Main(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, topUsage)
	case "version", "--version":
		fmt.Fprintln(stdout, printVersion())
	case "completion":
		return report(ctx, runCompletion(args[1:], stdout), stderr)
	case "man":
		if len(args) > 1 {
			return report(ctx, usagef("man takes no arguments"), stderr)
		}
		writeMan(stdout, manDate())
	}
	return exitOK
}

// checkCommandWord refuses a first argument that can only be a mistyped command: a bare word
// (no /, :, . or filter operator) that names no existing file. Without this check
// "ssmirror verfy /srv/mirror" would mirror a source directory called verfy.
func checkCommandWord(arg string) error {
	if arg == "" || strings.HasPrefix(arg, "-") || strings.ContainsAny(arg, "/:.=~!\\") {
		return nil
	}
	if _, err := os.Stat(arg); err == nil {
		return nil // a directory of that name: a SOURCE
	}
	hint := ""
	commands := commandNames()
	if near := nearest(arg, commands); near != "" {
		hint = fmt.Sprintf(" (did you mean %s?)", near)
	}
	return usagef("unknown command %q%s; the commands are %s (a SOURCE directory of that name is written ./%s)",
		arg, hint, strings.Join(commands, ", "), arg)
}

// nearest returns the candidate closest to s by edit distance, if it is close enough to be a
// typo of it ("" otherwise).
func nearest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := streams.EditDistance(strings.ToLower(s), c); d < bestD && d <= max(1, len(c)/3) {
			best, bestD = c, d
		}
	}
	return best
}
