package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ssmirror/ssmirror/cmd/internal/cliconfig"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

const queryUsage = `Usage: ssmirror query [flags] SOURCE [FILTER...]

List the items of SOURCE that FILTERs (and --max) select, without fetching any content: a table,
or JSON lines with --json. Use it to check a selection before mirroring it.

Examples:
  ssmirror query --keyring=/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg \
      https://images.maas.io/ephemeral-v3/stable/ 'arch=amd64' 'release=noble' --max=1
  ssmirror query --no-verify /srv/maas-images 'os~(grub*|pxelinux)' --json
`

func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		vf          cliconfig.Verify
		s3f         cliconfig.S3Flags
		tlsf        cliconfig.TLSFlags
		maxVersions int
		path        string
		jsonOut     bool
	)
	fs := newFlagSet("query", queryUsage, stdout)
	vf.AddFlags(fs)
	fs.IntVar(&maxVersions, "max", 0, "at most N versions per product (default: all; 0 is refused, see help sync)")
	fs.StringVar(&path, "path", "", "start from this metadata path instead of streams/v1/index.sjson")
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object per item")
	s3f.AddFlags(fs)
	tlsf.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := cliconfig.CheckMax(fs, maxVersions); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return usagef("query needs SOURCE (see ssmirror help query)")
	}
	loc, err := cliconfig.ParseLocation(fs.Arg(0))
	if err != nil {
		return err
	}
	filters, err := cliconfig.ParseFilterArgs(fs.Args()[1:])
	if err != nil {
		return usageError{Err: err}
	}
	keyring, err := vf.Load()
	if err != nil {
		return err
	}
	client, err := tlsf.HTTPClient(stderr)
	if err != nil {
		return err
	}
	src, err := cliconfig.OpenSource(ctx, loc, &s3f, nil, client, userAgent())
	if err != nil {
		return err
	}
	start := loc.Start
	if path != "" {
		start = path
	}
	cat, err := sync.LoadCatalogue(ctx, src, start, sync.Verification{Keyring: keyring, NoVerify: vf.NoVerify}, 0, 4)
	if err != nil {
		return err
	}
	items := cat.Items()
	plan := sync.MakePlan(sync.PlanInput{Upstream: items, Filters: filters, Max: maxVersions})
	if len(plan.Added) == 0 {
		// Say why on stderr: a sync with this selection would be refused.
		if why := streams.ExplainNoMatch(items, filters); why != "" {
			fmt.Fprintf(stderr, "ssmirror: the selection matches no item: %s\n", why)
		}
	}
	// One buffered writer: a catalogue of 100,000 items is as many lines.
	out := bufio.NewWriterSize(stdout, 64<<10)
	if jsonOut {
		enc := json.NewEncoder(out)
		for _, c := range plan.Added {
			enc.Encode(map[string]any{
				"content_id": c.ContentID, "product_name": c.Product, "version_name": c.Version,
				"item_name": c.Item, "path": c.Path, "size": c.Size,
			})
		}
		return out.Flush()
	}
	// Columns as wide as their widest cell (what text/tabwriter does, without holding every
	// cell a second time).
	header := [4]string{"PRODUCT", "VERSION", "ITEM", "PATH"}
	width := [4]int{}
	for i, h := range header {
		width[i] = len(h)
	}
	var total int64
	for _, c := range plan.Added {
		for i, cell := range [4]string{c.Product, c.Version, c.Item, c.Path} {
			width[i] = max(width[i], len(cell))
		}
		total += c.Size
	}
	row := func(cells [4]string, size string) {
		for i, cell := range cells {
			out.WriteString(cell)
			out.WriteString(strings.Repeat(" ", width[i]-len(cell)+2))
		}
		out.WriteString(size)
		out.WriteByte('\n')
	}
	row(header, "SIZE")
	for _, c := range plan.Added {
		row([4]string{c.Product, c.Version, c.Item, c.Path}, strconv.FormatInt(c.Size, 10))
	}
	fmt.Fprintf(out, "%d items, %s in %d distinct files\n", len(plan.Added), humanBytes(total), len(plan.Fetch))
	return out.Flush()
}
