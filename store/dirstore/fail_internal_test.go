package dirstore

import (
	"strings"
	"testing"
)

// TestWriteErrorNamesThePathOnce: an error of an operation on a file the store opened (a write,
// a sync, a chmod: its name is already the full path, the root's included) names the file's
// full path once; an error of an operation through the root (a relative name) names it too.
// Before, the root was put in front of the full path, naming the root twice
// ("write /srv/mirror/srv/mirror/a/.ssmirror-tmp-…").
func TestWriteErrorNamesThePathOnce(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, name, _, err := s.tempFile("a/b")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer s.root.Remove(name)
	_, werr := f.Write([]byte("x")) // a write that fails: the file is closed
	if werr == nil {
		t.Fatal("a write to a closed file succeeded")
	}
	_, rerr := s.root.Stat("a/missing") // an error through the root: a relative name
	for _, tc := range []struct {
		err  error
		want string
	}{
		{werr, dir + "/" + name},
		{rerr, dir + "/a/missing"},
	} {
		msg := s.fail("put", "a/b", tc.err).Error()
		if !strings.Contains(msg, tc.want) || strings.Count(msg, dir) != 1 {
			t.Errorf("the error %q should name %s, and the root %s once", msg, tc.want, dir)
		}
	}
}
