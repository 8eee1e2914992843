package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/ssmirror/ssmirror/internal/publiccheck"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

// generator names the function and its module version in the freshness record.
func generator() string {
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return "ssmirror-lambda " + v
}

// readBack reads the publish into the i-th target back through its $SSMIRROR_PUBLIC_URL (as
// ssmirror sync --public-url does): what is still stale or missing after $SSMIRROR_PUBLIC_WAIT is logged as a warning, or,
// with $SSMIRROR_PUBLIC_STRICT, fails the invocation (the summary still says what was served).
func readBack(ctx context.Context, c *config, i int, dst store.Target, rep *sync.Report, client *http.Client, log *slog.Logger) (*publiccheck.ReadBackResult, error) {
	url := c.flags.Public.URL(i)
	expect, err := publiccheck.ExpectPublished(ctx, dst, rep.Plan, !c.flags.NoItemDownload)
	if err != nil {
		return nil, fmt.Errorf("mirrored, but reading back through %s: %w", url, err)
	}
	pc, err := publiccheck.NewClient(client, url, "ssmirror-lambda")
	if err != nil {
		return nil, err
	}
	res, err := pc.ReadBack(ctx, expect, publiccheck.ReadBackOptions{
		Wait: c.flags.Public.Wait, Files: publiccheck.FilesOptions{Sample: 3, Concurrency: 8},
	})
	if err == nil {
		err = res.Err()
	}
	switch {
	case err == nil:
		log.Info("the public URL serves the publish", "url", res.URL, "files_checked", res.FilesChecked, "index_seconds", res.IndexSeconds)
	case c.flags.Public.Strict:
		return res, fmt.Errorf("mirrored, but %w", err)
	default:
		log.Warn("mirrored, but the public URL does not serve the publish", "error", err.Error())
	}
	return res, nil
}
