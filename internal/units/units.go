// Package units parses and prints the sizes and durations of ssmirror's flags, environment
// variables and config files in human units: sizes as 16MiB, 8M or plain bytes, durations as
// 1d, 12h or any Go duration (1h30m). Size and Duration are pflag.Value types, so a flag, its
// SSMIRROR_* variable and its config-file key all go through the same parsing.
package units

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// SizeForms and DurationForms say what a value may look like; errors end with them.
const (
	SizeForms     = "want bytes (5242880) or a number and a unit: 16MiB, 8M, 1.5G (K, M, G, T, P and KiB, MiB, GiB, TiB, PiB are powers of 1024; kB, MB, GB, TB, PB powers of 1000)"
	DurationForms = "want a number and a unit: 90s, 15m, 12h, 1d, 2w, or combined as 1h30m or 1d12h (units ns, us, ms, s, m, h, d = 24h, w = 7d; 0 alone needs none)"
)

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	"p": 1 << 50, "pib": 1 << 50, "pb": 1e15,
}

// ParseSize parses a byte count: plain bytes or a number with a unit (case does not matter;
// blanks between number and unit are allowed). Negative sizes and fractions of a byte are
// refused.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		if strings.HasPrefix(in, "-") {
			return 0, fmt.Errorf("invalid size %q: a size cannot be negative; %s", s, SizeForms)
		}
		return 0, fmt.Errorf("invalid size %q: %s", s, SizeForms)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("invalid size %q: too large (at most %s)", s, FormatSize(math.MaxInt64&^(mult-1)))
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %s", s, SizeForms)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	return int64(v), nil
}

// FormatSize prints n in the largest power-of-1024 unit that holds it exactly (8MiB, 1536KiB,
// 5000): what ParseSize reads back to n.
func FormatSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

const day = 24 * time.Hour

// ParseDuration parses a Go duration extended with d (24h) and w (7d): 1d, 12h, 1d12h, 90s,
// -1h. A number without a unit is refused (is 30 seconds or days?), except 0.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	rest, neg := in, false
	if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
		neg, rest = rest[0] == '-', rest[1:]
	}
	if rest == "0" {
		return 0, nil
	}
	if rest == "" {
		return 0, fmt.Errorf("invalid duration %q: %s", s, DurationForms)
	}
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		j := i
		for j < len(rest) && !(rest[j] >= '0' && rest[j] <= '9' || rest[j] == '.') {
			j++
		}
		num, unit := rest[:i], rest[i:j]
		rest = rest[j:]
		if num == "" || unit == "" {
			return 0, fmt.Errorf("invalid duration %q: %s", s, DurationForms)
		}
		var d time.Duration
		switch unit {
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q: %s", s, DurationForms)
			}
			mult := day
			if unit == "w" {
				mult = 7 * day
			}
			v := f * float64(mult)
			if v >= math.MaxInt64 {
				return 0, fmt.Errorf("invalid duration %q: too long", s)
			}
			d = time.Duration(v)
		case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("invalid duration %q: %s", s, DurationForms)
			}
		default:
			return 0, fmt.Errorf("invalid duration %q: unknown unit %q; %s", s, unit, DurationForms)
		}
		if total > math.MaxInt64-d {
			return 0, fmt.Errorf("invalid duration %q: too long", s)
		}
		total += d
	}
	if neg {
		total = -total
	}
	return total, nil
}

// FormatDuration prints d with days as d and without Go's trailing zero units (72h: 3d, 36h:
// 1d12h, 1h0m0s: 1h, 10s): what ParseDuration reads back to d.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0" // what pflag takes for a zero default, not shown in help
	}
	sign := ""
	if d < 0 {
		if d == math.MinInt64 {
			return d.String()
		}
		sign, d = "-", -d
	}
	out := ""
	if days := d / day; days > 0 {
		out = strconv.FormatInt(int64(days), 10) + "d"
		d -= days * day
	}
	if d > 0 {
		r := d.String()
		if strings.HasSuffix(r, "m0s") {
			r = strings.TrimSuffix(r, "0s")
		}
		if strings.HasSuffix(r, "h0m") {
			r = strings.TrimSuffix(r, "0m")
		}
		out += r
	}
	return sign + out
}

// Size is a byte count flag (pflag.Value), parsed by ParseSize.
type Size struct {
	p *int64
	// limit: the value is a limit that can be switched off ("none", "off" or a negative
	// number, stored as -1).
	limit bool
}

// NewSize sets *p to def and returns a flag value that sets it.
func NewSize(p *int64, def int64) *Size {
	*p = def
	return &Size{p: p}
}

// NewLimit is NewSize for a limit that "none", "off" or a negative number switches off (*p is
// then -1).
func NewLimit(p *int64, def int64) *Size {
	*p = def
	return &Size{p: p, limit: true}
}

func (s *Size) Set(v string) error {
	if s.limit {
		if t := strings.ToLower(strings.TrimSpace(v)); t == "none" || t == "off" || strings.HasPrefix(t, "-") {
			*s.p = -1
			return nil
		}
	}
	n, err := ParseSize(v)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "invalid size "+strconv.Quote(v)+": "))
	}
	*s.p = n
	return nil
}

func (s *Size) String() string {
	if s == nil || s.p == nil {
		return "0"
	}
	if s.limit && *s.p < 0 {
		return "none"
	}
	return FormatSize(*s.p)
}

func (s *Size) Type() string { return "size" }

// Duration is a duration flag (pflag.Value), parsed by ParseDuration.
type Duration struct{ p *time.Duration }

// NewDuration sets *p to def and returns a flag value that sets it.
func NewDuration(p *time.Duration, def time.Duration) *Duration {
	*p = def
	return &Duration{p}
}

func (d *Duration) Set(v string) error {
	n, err := ParseDuration(v)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "invalid duration "+strconv.Quote(v)+": "))
	}
	*d.p = n
	return nil
}

func (d *Duration) String() string {
	if d == nil || d.p == nil {
		return "0"
	}
	return FormatDuration(*d.p)
}

func (d *Duration) Type() string { return "duration" }
