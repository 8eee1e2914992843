package streams

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoIO keeps streams (and anything under it) a pure data package: no file, network or
// process I/O outside tests. Code that signs, serves or stores lives elsewhere
// (internal/streamtest, store/..., sync).
func TestNoIO(t *testing.T) {
	forbidden := map[string]bool{
		"net": true, "net/http": true, "net/http/httptest": true, "os": true, "os/exec": true,
		"io/fs": true, "io/ioutil": true, "syscall": true,
	}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if forbidden[p] {
				t.Errorf("%s imports %s: streams must do no I/O", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
