package streams

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSelectVersions(t *testing.T) {
	tests := []struct {
		name     string
		upstream []string
		held     []string
		max      int
		keep     bool
		want     []string
	}{
		{"unlimited", []string{"3", "1", "2"}, nil, 0, false, []string{"1", "2", "3"}},
		{"negative max unlimited", []string{"b", "a"}, []string{"z"}, -1, false, []string{"a", "b"}},
		{"newest two", []string{"20240101", "20240301", "20240201"}, nil, 2, false, []string{"20240201", "20240301"}},
		{"byte order not numeric", []string{"9", "10", "8"}, nil, 1, false, []string{"9"}},
		{"dotted versions", []string{"20240128", "20240128.1", "20210203.0"}, nil, 2, false, []string{"20240128", "20240128.1"}},
		{"duplicates", []string{"a", "b", "a", "b"}, nil, 3, false, []string{"a", "b"}},
		{"held ignored without keep", []string{"3"}, []string{"1", "2"}, 3, false, []string{"3"}},
		{"keep fills room newest first", []string{"5", "4"}, []string{"1", "2", "3", "4"}, 3, true, []string{"3", "4", "5"}},
		{"keep without room", []string{"5", "4", "6"}, []string{"1", "2"}, 3, true, []string{"4", "5", "6"}},
		{"held beyond max is dropped", []string{"1", "2", "3"}, []string{"1", "2", "3"}, 2, true, []string{"2", "3"}},
		{"keep unlimited", []string{"5"}, []string{"1", "3", "3"}, 0, true, []string{"1", "3", "5"}},
		{"keep with nothing upstream", nil, []string{"1", "2", "3"}, 2, true, []string{"2", "3"}},
		{"keep older and newer vanished", []string{"4"}, []string{"9", "1"}, 2, true, []string{"4", "9"}},
		{"nothing", nil, nil, 3, true, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := append([]string(nil), tt.upstream...)
			got := SelectVersions(tt.upstream, tt.held, tt.max, tt.keep)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			if !cmp.Equal(up, tt.upstream) {
				t.Fatal("upstream slice modified")
			}
		})
	}
}
