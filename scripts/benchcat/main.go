// Command benchcat makes and measures large catalogues for scripts/bench:
//
//	go run ./scripts/benchcat gen -items 10000 -content-size 1KiB -out DIR   # a signed stream, content included
//	go run ./scripts/benchcat gen -items 100000 -meta-only -out DIR          # metadata only
//	benchcat plan [-cpuprofile F] [-memprofile F] DIR                        # parse + plan, timed
//
// gen writes a MAAS-shaped stream (internal/streamtest) with at least -items items: 4 items
// (kernel, initrd, squashfs, manifest) per product version, products = releases × arches ×
// kernel flavours (5 × 2 × 1 up to 20,000 items, 5 × 4 × 5 beyond), and as many versions as it
// takes. Every content file has -content-size bytes (manifests are a few hundred bytes of text).
//
// plan reads every unsigned products file (DIR/streams/v1/*.json but the index), parses it
// (streams.ParseProducts), flattens it (Products.Items), and plans twice with sync.MakePlan:
// into an empty mirror (everything to fetch) and into a mirror holding exactly that plan's
// result (nothing to fetch, the up-to-date case). It prints the timings and the process's peak
// RSS; run it under /usr/bin/time for an outside measure.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchcat:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: benchcat gen|plan [flags] (see the package doc)")
	}
	switch args[0] {
	case "gen":
		return gen(args[1:], stdout, stderr)
	case "plan":
		return plan(args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (gen or plan)", args[0])
}

// Config returns a streamtest configuration with at least items items of contentSize bytes.
func Config(items int, contentSize int64) streamtest.Config {
	cfg := streamtest.Config{
		Releases: []string{"bionic", "focal", "jammy", "noble", "plucky"},
		Arches:   []string{"amd64", "arm64"},
		Kernels:  []string{"ga"},
		Seed:     1,
	}
	if items > 20000 {
		cfg.Arches = []string{"amd64", "arm64", "ppc64el", "s390x"}
		cfg.Kernels = []string{"ga", "hwe", "hwe-edge", "ga-lowlatency", "hwe-lowlatency"}
	}
	perVersion := 4 * len(cfg.Releases) * len(cfg.Arches) * len(cfg.Kernels)
	versions := max(1, (items+perVersion-1)/perVersion)
	day := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range versions {
		cfg.Versions = append(cfg.Versions, day.AddDate(0, 0, i).Format("20060102"))
	}
	cfg.SquashfsSize, cfg.KernelSize, cfg.InitrdSize, cfg.BootloaderSize = contentSize, contentSize, contentSize, contentSize
	return cfg
}

func gen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchcat gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write the stream into (required)")
	items := fs.Int("items", 10000, "at least this many items")
	size := fs.String("content-size", "1KiB", "bytes per content file")
	metaOnly := fs.Bool("meta-only", false, "write the metadata only, no content files")
	key := fs.String("key", "testdata/keys/test-signing-key.asc", "armoured secret key to sign with; empty: unsigned")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("gen: -out is required and no arguments are taken")
	}
	n, err := parseBytes(*size)
	if err != nil || n <= 0 {
		return fmt.Errorf("gen: -content-size %q: want a positive byte count", *size)
	}
	var signer *sign.Signer
	if *key != "" {
		f, err := os.Open(*key)
		if err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		signer, err = sign.LoadSigner(f, nil)
		f.Close()
		if err != nil {
			return fmt.Errorf("gen: %s: %w", *key, err)
		}
	}
	cfg := Config(*items, n)
	s, err := streamtest.Generate(cfg, signer)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	if *metaOnly {
		for p, data := range s.Files {
			name := filepath.Join(*out, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return fmt.Errorf("gen: %w", err)
			}
			if err := os.WriteFile(name, data, 0o644); err != nil {
				return fmt.Errorf("gen: %w", err)
			}
		}
	} else if err := s.WriteDir(*out); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	var meta int64
	for _, d := range s.Files {
		meta += int64(len(d))
	}
	fmt.Fprintf(stdout, "benchcat: %d items (%d versions), %d content files (%d bytes, written: %v), %d metadata files (%d bytes; %s: %d bytes) in %s\n",
		len(s.Items), len(cfg.Versions), len(s.Content), s.TotalSize(), !*metaOnly, len(s.Files), meta,
		streamtest.ProductsPath(streamtest.DownloadID), len(s.Files[streamtest.ProductsPath(streamtest.DownloadID)]), *out)
	return nil
}

func plan(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchcat plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of parse + plan to this file")
	memProfile := fs.String("memprofile", "", "write a heap (alloc) profile to this file at the end")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("plan: one argument, the stream directory")
	}
	dir := filepath.Join(fs.Arg(0), "streams", "v1")
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	var (
		all                   []streams.Item
		bytes                 int64
		tRead, tParse, tItems time.Duration
	)
	for _, name := range names {
		if filepath.Base(name) == "index.json" {
			continue
		}
		t := time.Now()
		data, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		bytes += int64(len(data))
		tRead += time.Since(t)
		t = time.Now()
		p, err := streams.ParseProducts(data)
		if err != nil {
			return fmt.Errorf("plan: %s: %w", name, err)
		}
		data = nil
		tParse += time.Since(t)
		t = time.Now()
		items, err := p.Items()
		if err != nil {
			return fmt.Errorf("plan: %s: %w", name, err)
		}
		tItems += time.Since(t)
		all = append(all, items...)
	}
	t := time.Now()
	first := sync.MakePlan(sync.PlanInput{Upstream: all})
	tPlan := time.Since(t)

	// The up-to-date case: the mirror holds what the first plan decided, every object present.
	present := make(map[string]sync.Presence, len(first.Fetch))
	for _, f := range first.Fetch {
		present[f.Path] = sync.Presence{Size: f.Size, SHA256: f.SHA256, Owned: true}
	}
	t = time.Now()
	again := sync.MakePlan(sync.PlanInput{Upstream: all, Held: first.Held, Present: present})
	tReplan := time.Since(t)
	total := time.Since(start)
	if len(again.Fetch) != 0 || len(again.Added) != 0 || len(again.Removed) != 0 {
		return fmt.Errorf("plan: the up-to-date plan is not empty: %d to fetch, %d added, %d removed",
			len(again.Fetch), len(again.Added), len(again.Removed))
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return fmt.Errorf("plan: %w", err)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(stdout, "benchcat plan: %d items, %d products bytes; read %.3fs, parse %.3fs, items %.3fs, plan %.3fs, up-to-date plan %.3fs, total %.3fs; %d to fetch (%d bytes); allocated %d MB in all, peak RSS %d MB\n",
		len(all), bytes, tRead.Seconds(), tParse.Seconds(), tItems.Seconds(), tPlan.Seconds(), tReplan.Seconds(), total.Seconds(),
		len(first.Fetch), first.FetchBytes(), ms.TotalAlloc>>20, peakRSS()>>20)
	return nil
}

// parseBytes parses "1KiB", "4K", "1MiB" or a plain number of bytes (K/M = 1024^n here: these
// are file sizes).
func parseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, err
	}
	return n * mult, nil
}
