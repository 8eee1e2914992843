package units

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  string // part of the error; "" for none
	}{
		{"0", 0, ""},
		{"5242880", 5242880, ""},
		{"16MiB", 16 << 20, ""},
		{"16mib", 16 << 20, ""},
		{"8M", 8 << 20, ""},
		{"8m", 8 << 20, ""},
		{"8 MiB", 8 << 20, ""},
		{" 64GiB ", 64 << 30, ""},
		{"1.5G", 3 << 29, ""},
		{"1K", 1024, ""},
		{"1kB", 1000, ""},
		{"5MB", 5e6, ""},
		{"2TB", 2e12, ""},
		{"1P", 1 << 50, ""},
		{"100b", 100, ""},
		{"7.5k", 7680, ""},
		{"", 0, "want bytes (5242880) or a number and a unit"},
		{"MiB", 0, "want bytes"},
		{"16XB", 0, "KiB, MiB, GiB"},
		{"-1", 0, "cannot be negative"},
		{"-5MiB", 0, "cannot be negative"},
		{"0.1K", 0, "not a whole number of bytes"},
		{"1.2.3M", 0, "want bytes"},
		{"9223372036854775807", math.MaxInt64, ""},
		{"9223372036854775808", 0, "too large"},
		{"8E", 0, "want bytes"},
		{"10000000P", 0, "too large"},
		{"16 Mi B", 0, "want bytes"},
	} {
		got, err := ParseSize(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("ParseSize(%q): %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseSize(%q) = %d, %v; want an error containing %q", tt.in, got, err, tt.err)
		case tt.err == "" && got != tt.want:
			t.Errorf("ParseSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"0", 0, ""},
		{"1d", 24 * time.Hour, ""},
		{"12h", 12 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"2w", 14 * 24 * time.Hour, ""},
		{"1.5d", 36 * time.Hour, ""},
		{"90s", 90 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"72h0m0s", 72 * time.Hour, ""},
		{"-1h", -time.Hour, ""},
		{"-1d", -24 * time.Hour, ""},
		{" 15m ", 15 * time.Minute, ""},
		{"30", 0, "want a number and a unit: 90s, 15m, 12h, 1d"},
		{"", 0, "want a number and a unit"},
		{"d", 0, "want a number and a unit"},
		{"1y", 0, `unknown unit "y"`},
		{"3days", 0, `unknown unit "days"`},
		{"1h-30m", 0, `unknown unit "h-"`},
		{"1.2.3h", 0, "want a number and a unit"},
		{"200000w", 0, "too long"},
		{"100000d100000d", 0, "too long"},
		{"9999999999h", 0, "want a number and a unit"},
	} {
		got, err := ParseDuration(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("ParseDuration(%q): %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseDuration(%q) = %v, %v; want an error containing %q", tt.in, got, err, tt.err)
		case tt.err == "" && got != tt.want:
			t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{{0, "0"}, {1, "1"}, {5000, "5000"}, {1536, "1536"}, {8 << 20, "8MiB"}, {256 << 20, "256MiB"}, {64 << 30, "64GiB"}, {3 << 29, "1536MiB"}, {math.MaxInt64, "9223372036854775807"}} {
		if got := FormatSize(tt.n); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
		if back, err := ParseSize(FormatSize(tt.n)); err != nil || back != tt.n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", tt.n, back, err)
		}
	}
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{0, "0"}, {10 * time.Second, "10s"}, {time.Hour, "1h"}, {90 * time.Minute, "1h30m"}, {72 * time.Hour, "3d"}, {36 * time.Hour, "1d12h"}, {-time.Nanosecond, "-1ns"}, {25*time.Hour + time.Second, "1d1h0m1s"}, {time.Duration(math.MaxInt64), ""}} {
		got := FormatDuration(tt.d)
		if tt.want != "" && got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
		if back, err := ParseDuration(got); err != nil || back != tt.d {
			t.Errorf("ParseDuration(FormatDuration(%v) = %q) = %v, %v", tt.d, got, back, err)
		}
	}
}

// TestFlags: the values work as pflag flags, show human defaults in help, and name the
// accepted forms in errors.
func TestFlags(t *testing.T) {
	var size int64
	var d time.Duration
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.Var(NewSize(&size, 8<<20), "part-size", "part size")
	fs.Var(NewDuration(&d, 72*time.Hour), "gc-grace", "grace")
	var zero time.Duration
	fs.Var(NewDuration(&zero, 0), "lock-timeout", "wait")
	if size != 8<<20 || d != 72*time.Hour {
		t.Fatalf("defaults not set: %d %v", size, d)
	}
	usage := fs.FlagUsages()
	for _, want := range []string{"--part-size size", "(default 8MiB)", "--gc-grace duration", "(default 3d)"} {
		if !strings.Contains(usage, want) {
			t.Errorf("usage lacks %q:\n%s", want, usage)
		}
	}
	if strings.Contains(usage, "(default 0") {
		t.Errorf("a zero default is shown:\n%s", usage)
	}
	if err := fs.Parse([]string{"--part-size=16MiB", "--gc-grace", "1d"}); err != nil {
		t.Fatal(err)
	}
	if size != 16<<20 || d != 24*time.Hour {
		t.Errorf("parsed %d %v", size, d)
	}
	err := fs.Set("part-size", "16 megs")
	if err == nil || !strings.Contains(err.Error(), `invalid argument "16 megs" for "--part-size" flag: want bytes`) {
		t.Errorf("bad size: %v", err)
	}
	err = fs.Set("gc-grace", "3 days")
	if err == nil || !strings.Contains(err.Error(), "want a number and a unit") {
		t.Errorf("bad duration: %v", err)
	}
}

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		str  string
	}{
		{"none", -1, "none"},
		{"off", -1, "none"},
		{"-1", -1, "none"},
		{"64GiB", 64 << 30, "64GiB"},
		{"8", 8, "8"},
	} {
		var v int64
		l := NewLimit(&v, 5)
		if err := l.Set(tc.in); err != nil {
			t.Errorf("Set(%q): %v", tc.in, err)
			continue
		}
		if v != tc.want || l.String() != tc.str {
			t.Errorf("Set(%q) = %d (%q), want %d (%q)", tc.in, v, l.String(), tc.want, tc.str)
		}
	}
	var v int64
	if err := NewSize(&v, 0).Set("-1"); err == nil {
		t.Error("a plain size accepted -1")
	}
}
