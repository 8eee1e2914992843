package httpstore

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/ssmirror/ssmirror/store"
)

func readRange(t *testing.T, s *Store, key string, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := s.OpenRange(t.Context(), key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestOpenRange: a bounded range asks for exactly its bytes and yields exactly them, also when
// its body is cut twice (resumed from where it stopped to the end of the range, not beyond).
func TestOpenRange(t *testing.T) {
	data := content(300_000)
	objs := newObjects(map[string][]byte{"f": data})
	objs.handler = func(w http.ResponseWriter, r *http.Request, d []byte, n int) bool {
		if n > 2 {
			return false
		}
		// Send the right headers, then only part of the range, then drop the connection.
		start, end := 100_000+int64(n-1)*1000, int64(199_999)
		if n == 1 {
			start = 100_000
		}
		w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(end, 10)+"/300000")
		w.Header().Set("Content-Length", strconv.FormatInt(end-start+1, 10))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(d[start : start+1000])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	srv := httptest.NewServer(objs)
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})

	got, err := readRange(t, s, "f", 100_000, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, data[100_000:200_000])
	objs.mu.Lock()
	ranges := objs.ranges
	objs.mu.Unlock()
	want := []string{"bytes=100000-199999", "bytes=101000-199999", "bytes=102000-199999"}
	if len(ranges) != len(want) {
		t.Fatalf("ranges asked for: %q, want %q", ranges, want)
	}
	for i := range want {
		if ranges[i] != want[i] {
			t.Fatalf("ranges asked for: %q, want %q", ranges, want)
		}
	}

	// The last bytes of the object, and a range starting at 0.
	objs.handler = nil
	got, err = readRange(t, s, "f", 299_990, 10)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, data[299_990:])
	got, err = readRange(t, s, "f", 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, data[:5])
}

// TestOpenRangeServerIgnoresRange: a server answering 200 with the whole object still yields
// exactly the range.
func TestOpenRangeServerIgnoresRange(t *testing.T) {
	data := content(50_000)
	objs := newObjects(map[string][]byte{"f": data})
	objs.handler = func(w http.ResponseWriter, r *http.Request, d []byte, n int) bool {
		w.Header().Set("Content-Length", strconv.Itoa(len(d)))
		w.Write(d)
		return true
	}
	srv := httptest.NewServer(objs)
	defer srv.Close()
	got, err := readRange(t, newStore(t, srv.URL, Options{}), "f", 20_000, 7_000)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, data[20_000:27_000])
}

// TestOpenRangeErrors: a range past the end of the object fails (not a short read taken for the
// whole range), and a missing object is ErrNotExist.
func TestOpenRangeErrors(t *testing.T) {
	data := content(10_000)
	srv := httptest.NewServer(newObjects(map[string][]byte{"f": data}))
	defer srv.Close()
	s := newStore(t, srv.URL, Options{})
	for _, r := range [][2]int64{{9_000, 2_000}, {10_000, 10}, {20_000, 10}} {
		got, err := readRange(t, s, "f", r[0], r[1])
		if err == nil {
			t.Errorf("range %d+%d of a 10000-byte object: got %d bytes and no error", r[0], r[1], len(got))
		}
	}
	if _, err := readRange(t, s, "missing", 0, 10); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("missing object: %v, want ErrNotExist", err)
	}
	if _, err := s.OpenRange(t.Context(), "f", -1, 10); err == nil {
		t.Error("negative offset accepted")
	}
}
