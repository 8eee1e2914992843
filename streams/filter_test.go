package streams

import (
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		in             string
		key, op, value string
		err            string
	}{
		{in: "arch=amd64", key: "arch", op: "=", value: "amd64"},
		{in: "arch!=amd64", key: "arch", op: "!=", value: "amd64"},
		{in: "release~(bionic|focal)", key: "release", op: "~", value: "(bionic|focal)"},
		{in: "os!~^grub", key: "os", op: "!~", value: "^grub"},
		{in: "os~(grub*|pxelinux)", key: "os", op: "~", value: "(grub*|pxelinux)"},
		{in: "bootloader-type=uefi", key: "bootloader-type", op: "=", value: "uefi"},
		{in: "com.ubuntu:x_y-z=1", key: "com.ubuntu:x_y-z", op: "=", value: "1"},
		{in: "label=", key: "label", op: "=", value: ""},
		{in: "a==b", key: "a", op: "=", value: "=b"},
		{in: "a=b=c~d", key: "a", op: "=", value: "b=c~d"},
		{in: "a~=x", key: "a", op: "~", value: "=x"},
		{in: "a!=~x", key: "a", op: "!=", value: "~x"},
		{in: "a!~!=", key: "a", op: "!~", value: "!="},
		{in: "a=ünï cödé ", key: "a", op: "=", value: "ünï cödé "},
		{in: "", err: "no key"},
		{in: "=x", err: "no key"},
		{in: "!=x", err: "no key"},
		{in: "arch", err: "no operator"},
		{in: "arch!x", err: "no operator"},
		{in: "ar ch=x", err: "no operator"},
		{in: "arch<amd64", err: "no operator"},
		{in: "release~(bionic", err: `filter "release~(bionic": error parsing regexp`},
		{in: "a!~[", err: `filter "a!~["`},
		{in: "a~(?=x)", err: "error parsing regexp"}, // RE2 has no lookahead
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			f, err := ParseFilter(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f != (Filter{tt.key, tt.op, tt.value}) {
				t.Fatalf("got %+v", f)
			}
			if f.String() != tt.in {
				t.Fatalf("String() = %q", f.String())
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	attrs := map[string]string{"arch": "amd64", "release": "focal", "os": "grub-efi-signed", "empty": ""}
	tests := []struct {
		filter string
		want   bool
	}{
		{"arch=amd64", true},
		{"arch=amd", false},
		{"arch!=amd64", false},
		{"arch!=arm64", true},
		{"release~(bionic|focal)", true},
		{"release~(bionic|jammy)", false},
		{"release~oca", true}, // unanchored search
		{"release~^oca", false},
		{"release!~^f", false},
		{"release!~^j", true},
		{"os~(grub*|pxelinux)", true},
		{"missing=", true}, // missing key compares as ""
		{"missing!=", false},
		{"missing=x", false},
		{"missing!=x", true},
		{"missing~^$", true},
		{"missing~.", false},
		{"missing!~.", true},
		{"empty=", true},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Match(attrs); got != tt.want {
			t.Errorf("%s.Match = %v, want %v", tt.filter, got, tt.want)
		}
	}
	// Hand-built filters that ParseFilter would reject match nothing.
	for _, f := range []Filter{{"arch", "<", "x"}, {"arch", "~", "("}, {"arch", "!~", "("}, {}} {
		if f.Match(attrs) {
			t.Errorf("%+v matched", f)
		}
	}
}

func TestFilters(t *testing.T) {
	attrs := map[string]string{"arch": "amd64", "release": "focal"}
	if fs, err := ParseFilters(nil); err != nil || !fs.Match(attrs) || !fs.Match(nil) {
		t.Fatalf("empty filters: %v %v", fs, err)
	}
	fs, err := ParseFilters([]string{"arch=amd64", "release~(bionic|focal)"})
	if err != nil {
		t.Fatal(err)
	}
	if !fs.Match(attrs) {
		t.Error("AND of true filters failed")
	}
	if fs.Match(map[string]string{"arch": "arm64", "release": "focal"}) {
		t.Error("AND matched with one false filter")
	}
	if got := strings.Join(fs.Strings(), " "); got != "arch=amd64 release~(bionic|focal)" {
		t.Errorf("Strings = %q", got)
	}
	if _, err := ParseFilters([]string{"arch=amd64", "bad"}); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("err = %v", err)
	}
}
