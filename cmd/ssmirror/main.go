// Command ssmirror publishes SimpleStreams mirrors (MAAS boot images, Ubuntu cloud images, LXD
// images) into S3-compatible buckets or directories. Run `ssmirror --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
