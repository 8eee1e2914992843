// Command genstream writes a generated MAAS-shaped SimpleStreams mirror (signed metadata and
// deterministic pseudo-random content) to a directory, for tests and benchmarks.
//
//	go run ./scripts/genstream -out DIR [-key testdata/keys/test-signing-key.asc] \
//	    [-preset small|bench] [-releases jammy,noble] [-arches amd64,arm64] \
//	    [-versions 20250701,20250718] [-kernels ga,hwe] [-bootloaders=true] \
//	    [-total-size 1.5G] [-seed 1]
//
// Content is generated while it is written, never held in memory. Files already in DIR are
// overwritten; nothing is deleted. -key "" writes unsigned metadata (.json only).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/sign"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "genstream:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("genstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write the stream into (required)")
	key := fs.String("key", "testdata/keys/test-signing-key.asc", "armoured secret key without passphrase to sign with; empty: unsigned")
	preset := fs.String("preset", "small", "small (the testdata/stream fixture) or bench (about 1.5 GB in about 100 files)")
	releases := fs.String("releases", "", "comma-separated release codenames (default: the preset's)")
	arches := fs.String("arches", "", "comma-separated architectures (default: the preset's)")
	versions := fs.String("versions", "", "comma-separated version names, oldest first (default: the preset's)")
	kernels := fs.String("kernels", "", "comma-separated kernel flavours, e.g. ga,hwe,hwe-edge (default: the preset's)")
	bootloaders := fs.Bool("bootloaders", true, "include the bootloader products file")
	totalSize := fs.String("total-size", "", "scale content sizes so that the content totals about this much (e.g. 1.5G, 300M)")
	seed := fs.Int64("seed", 1, "content seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("-out is required and no arguments are taken")
	}

	var cfg streamtest.Config
	switch *preset {
	case "small":
		cfg = streamtest.SmallConfig()
	case "bench":
		cfg = streamtest.BenchConfig()
	default:
		return fmt.Errorf("unknown preset %q (small or bench)", *preset)
	}
	setList(&cfg.Releases, *releases)
	setList(&cfg.Arches, *arches)
	setList(&cfg.Versions, *versions)
	setList(&cfg.Kernels, *kernels)
	cfg.Bootloaders = *bootloaders
	cfg.Seed = *seed
	if *totalSize != "" {
		n, err := parseSize(*totalSize)
		if err != nil {
			return fmt.Errorf("-total-size: %w", err)
		}
		cfg = cfg.ScaledTo(n)
	}

	var signer *sign.Signer
	if *key != "" {
		f, err := os.Open(*key)
		if err != nil {
			return err
		}
		signer, err = sign.LoadSigner(f, nil)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *key, err)
		}
	}
	s, err := streamtest.Generate(cfg, signer)
	if err != nil {
		return err
	}
	if err := s.WriteDir(*out); err != nil {
		return err
	}
	signed := "unsigned"
	if signer != nil {
		signed = "signed by " + signer.Fingerprint()
	}
	fmt.Fprintf(stdout, "wrote %d metadata files (%s) and %d content files (%d bytes) to %s\n",
		len(s.Files), signed, len(s.Content), s.TotalSize(), *out)
	return nil
}

func setList(dst *[]string, v string) {
	if v == "" {
		return
	}
	*dst = nil
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*dst = append(*dst, f)
		}
	}
}

// parseSize parses a byte count with an optional binary suffix: 1.5G, 300M, 64K, 1024.
func parseSize(s string) (int64, error) {
	mult := 1.0
	num := strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	if num != "" {
		switch num[len(num)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			num = num[:len(num)-1]
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * mult), nil
}
