package s3store

import (
	"testing"
)

func TestNewNormalisesPrefix(t *testing.T) {
	for _, tc := range []struct{ prefix, want, describe string }{
		{"", "", "s3://b/"},
		{"/", "", "s3://b/"},
		{"mirror", "mirror/", "s3://b/mirror"},
		{"/mirror/", "mirror/", "s3://b/mirror"},
		{"a/b", "a/b/", "s3://b/a/b"},
	} {
		s := New(nil, "b", tc.prefix, Options{})
		if s.Prefix() != tc.want || s.Describe() != tc.describe {
			t.Errorf("New(prefix %q): prefix %q describe %q, want %q %q", tc.prefix, s.Prefix(), s.Describe(), tc.want, tc.describe)
		}
		if got := s.fullKey("x/y"); got != tc.want+"x/y" {
			t.Errorf("fullKey = %q", got)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	s := New(nil, "b", "", Options{})
	if s.partSize != DefaultPartSize || s.concurrency != DefaultPartConcurrency {
		t.Errorf("defaults: part size %d concurrency %d", s.partSize, s.concurrency)
	}
	s = New(nil, "b", "", Options{PartSize: 1 << 20, PartConcurrency: 2})
	if s.partSize != MinPartSize || s.concurrency != 2 {
		t.Errorf("small part size: %d (want %d), concurrency %d", s.partSize, MinPartSize, s.concurrency)
	}
}

func TestCopySource(t *testing.T) {
	got := copySource("bkt", "mirror/a b/c+d/ü?x")
	want := "bkt/mirror/a%20b/c+d/%C3%BC%3Fx"
	if got != want {
		t.Errorf("copySource = %q, want %q", got, want)
	}
}

func TestRecordedSHA256(t *testing.T) {
	good := "ab" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
	for md, want := range map[*map[string]string]string{
		{"sha256": good}:              good,
		{"Sha256": "  " + good + " "}: good,
		{"sha256": "not a hash"}:      "",
		{"other": good}:               "",
	} {
		if got := recordedSHA256(*md); got != want {
			t.Errorf("recordedSHA256(%v) = %q, want %q", *md, got, want)
		}
	}
}
