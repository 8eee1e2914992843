package maasmodel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/sign"
)

const root = "../.."

func testKeys(t *testing.T) (*sign.Signer, *sign.Keyring) {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "testdata/keys/test-signing-key.asc"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	signer, err := sign.LoadSigner(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := sign.LoadKeyring(filepath.Join(root, "testdata/keys/test-keyring.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	return signer, kr
}

// reader reads metadata the way MAAS does: an .sjson file is verified and its body read.
func reader(get func(string) ([]byte, error), kr *sign.Keyring) func(string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		data, err := get(path)
		if err != nil || !strings.HasSuffix(path, ".sjson") {
			return data, err
		}
		return sign.VerifyClearsigned(path, data, kr)
	}
}

// checkStream checks a mirror from both of its indexes (unsigned and signed) and wants the
// models given by content id.
func checkStream(t *testing.T, name string, get func(string) ([]byte, error), kr *sign.Keyring, want map[string]Model) {
	t.Helper()
	for _, index := range []string{streamtest.IndexPath, streamtest.SignedIndexPath} {
		if kr == nil && index == streamtest.SignedIndexPath {
			continue
		}
		models, err := CheckMirror(reader(get, kr), index)
		if err != nil {
			t.Errorf("%s from %s: %v", name, index, err)
			continue
		}
		if fmt.Sprint(models) != fmt.Sprint(want) {
			t.Errorf("%s from %s: models %v, want %v", name, index, models, want)
		}
	}
}

var both = map[string]Model{streamtest.DownloadID: MultiFile, streamtest.BootloaderID: Bootloader}

// The committed fixture is what MAAS 4 accepts, read from either index.
func TestFixtureStream(t *testing.T) {
	_, kr := testKeys(t)
	dir := filepath.Join(root, "testdata/stream")
	checkStream(t, dir, func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, p)) }, kr, both)
	// Without a keyring, CheckFS reads the signed forms as MAAS does when it skips verification.
	for _, index := range []string{streamtest.IndexPath, streamtest.SignedIndexPath} {
		if models, err := CheckFS(os.DirFS(dir), index); err != nil || fmt.Sprint(models) != fmt.Sprint(both) {
			t.Errorf("CheckFS from %s: %v %v", index, models, err)
		}
	}
}

// Every stream streamtest generates, in every configuration the tests and presets use, is what
// MAAS 4 accepts.
func TestGeneratedStreams(t *testing.T) {
	signer, kr := testKeys(t)
	small := streamtest.SmallConfig()
	bench := streamtest.BenchConfig().ScaledTo(1 << 20) // the bench shape, not its size
	allReleases := small
	allReleases.Releases = streamtest.Releases()
	allReleases.Arches = []string{"amd64", "arm64", "ppc64el", "s390x"}
	flavours := small
	flavours.Kernels = []string{"ga", "hwe", "hwe-edge", "ga-lowlatency", "hwe-lowlatency-edge"}
	noBoot := small
	noBoot.Bootloaders = false
	oneVersion := streamtest.Config{Releases: []string{"noble"}, Arches: []string{"amd64"}, Versions: []string{"1"},
		Kernels: []string{"ga"}, Bootloaders: true}
	for name, tc := range map[string]struct {
		cfg  streamtest.Config
		want map[string]Model
	}{
		"small":          {small, both},
		"bench":          {bench, both},
		"all releases":   {allReleases, both},
		"flavours":       {flavours, both},
		"no bootloaders": {noBoot, map[string]Model{streamtest.DownloadID: MultiFile}},
		"one version":    {oneVersion, both},
	} {
		for _, signed := range []bool{true, false} {
			var sg *sign.Signer
			if signed {
				sg = signer
			}
			s, err := streamtest.Generate(tc.cfg, sg)
			if err != nil {
				t.Fatal(err)
			}
			get := func(p string) ([]byte, error) {
				data, ok := s.Files[p]
				if !ok {
					return nil, fmt.Errorf("%s: not in the stream", p)
				}
				return data, nil
			}
			k := kr
			if !signed {
				k = nil
			}
			checkStream(t, fmt.Sprintf("%s (signed %v)", name, signed), get, k, tc.want)
		}
	}
}
