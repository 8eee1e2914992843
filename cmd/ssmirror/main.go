// Command ssmirror publishes SimpleStreams mirrors (MAAS boot images, Ubuntu cloud images, LXD
// images) into S3-compatible buckets or directories. Run `ssmirror --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
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
