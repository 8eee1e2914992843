package cliconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// A refused setting is named where it was given: the command line (as the flag), the
// environment (its variable) or the config file (its line).
func TestCheckNamesWhereASettingCameFrom(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.conf")
	if err := os.WriteFile(file, []byte("# comment\nlock-ttl = 10ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // the error starts with it
	}{
		{"flag", []string{"--max=0"}, nil, "--max=0 is refused"},
		{"environment", nil, map[string]string{"SSMIRROR_MAX": "0"}, "$SSMIRROR_MAX: --max=0 is refused"},
		{"flag wins over environment", []string{"--lock-ttl=20ms"}, map[string]string{"SSMIRROR_LOCK_TTL": "30ms"}, "--lock-ttl 20ms is shorter"},
		{"environment wins over file", nil, map[string]string{"SSMIRROR_CONFIG": file, "SSMIRROR_LOCK_TTL": "30ms"}, "$SSMIRROR_LOCK_TTL: --lock-ttl 30ms is shorter"},
		{"file", nil, map[string]string{"SSMIRROR_CONFIG": file}, file + ":2: --lock-ttl 10ms is shorter"},
		{"upload checksum", nil, map[string]string{"SSMIRROR_UPLOAD_CHECKSUM": "sha1"}, "$SSMIRROR_UPLOAD_CHECKSUM: --upload-checksum: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Sync
			fs := pflag.NewFlagSet("sync", pflag.ContinueOnError)
			s.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if _, err := Configure(fs, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }, nil); err != nil {
				t.Fatal(err)
			}
			err := s.Check(fs)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one starting %q", err, tc.want)
			}
			if !errors.As(err, new(UsageError)) {
				t.Errorf("%v is not a UsageError", err)
			}
		})
	}
}
