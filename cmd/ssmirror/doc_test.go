package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docCommand is one ssmirror command of a document's shell blocks, continuation lines joined.
type docCommand struct {
	doc  string
	line int
	text string
}

// docCommands returns the ssmirror command lines of the ```sh and ```bash blocks of a document
// (a line starting with ssmirror, ./ssmirror or go run ./cmd/ssmirror; "\" continuations joined;
// comments dropped).
func docCommands(t *testing.T, doc string) []docCommand {
	t.Helper()
	f, err := os.Open(doc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docCommand
	sc := bufio.NewScanner(f)
	in, n, start := false, 0, 0
	var cur strings.Builder
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && (trimmed == "```sh" || trimmed == "```bash" || trimmed == "```console"):
			in = true
			continue
		case in && strings.HasPrefix(trimmed, "```"):
			in = false
			cur.Reset()
			continue
		case !in:
			continue
		}
		if i := strings.Index(trimmed, "  #"); i >= 0 {
			trimmed = strings.TrimSpace(trimmed[:i])
		}
		if cur.Len() == 0 {
			start = n
		}
		cont := strings.HasSuffix(trimmed, "\\")
		cur.WriteString(strings.TrimSuffix(trimmed, "\\"))
		cur.WriteString(" ")
		if cont {
			continue
		}
		text := strings.Join(strings.Fields(cur.String()), " ")
		cur.Reset()
		for _, p := range []string{"ssmirror ", "./ssmirror ", "go run ./cmd/ssmirror "} {
			if strings.HasPrefix(text, p) {
				out = append(out, docCommand{doc, start, "./ssmirror " + strings.TrimPrefix(text, p)})
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The documents' placeholders, filled with the repository's example: upstream's keyring and
// the example stream; a mirror under /srv/ goes into the test's directory.
var placeholders = strings.NewReplacer("$KEYRING", "testdata/keys/test-keyring.gpg", "$URL", "testdata/stream", " /srv/", " srv/")

// runnable says whether this machine can run a documented command as written (placeholders
// filled), with nothing but the repository: no servers (S3, HTTP upstreams), no system paths,
// no pipes or redirections, no synopsis ([--flag]).
var notHere = regexp.MustCompile(`\$|s3://|https?://|/etc/|/var/|/usr/|[|<>&;]|\[--|--config|--metrics|--cloudfront|PROFILE|images\.maas\.io`)

func runnable(c docCommand) bool { return !notHere.MatchString(c.text) }

// The README's and the operator guide's ssmirror commands that this machine can run (against
// the example stream in testdata/, into directories) run as written and succeed, in the order
// the documents give them, each document in a directory of its own holding the binary as
// ./ssmirror and the repository's testdata/.
func TestDocCommandsRunAsWritten(t *testing.T) {
	bin := buildBinary(t)
	fx := fixtureDir(t)
	ran := 0
	for _, doc := range []string{filepath.Join("..", "..", "README.md"), filepath.Join("..", "..", "docs", "operator-guide.md")} {
		dir := t.TempDir()
		if err := os.Symlink(bin, filepath.Join(dir, "ssmirror")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(fx, filepath.Join(dir, "testdata")); err != nil {
			t.Fatal(err)
		}
		// The commands that read /srv/mirror (status, verify, gc) read a verbatim mirror of the
		// example, as the documents' recipes make.
		setup := exec.Command(bin, "--keyring=testdata/keys/test-keyring.gpg", "testdata/stream", "srv/mirror", "arch=amd64", "--max=1")
		setup.Dir = dir
		if out, err := setup.CombinedOutput(); err != nil {
			t.Fatalf("making srv/mirror: %v\n%s", err, out)
		}
		for _, c := range docCommands(t, doc) {
			c.text = placeholders.Replace(c.text)
			if !runnable(c) {
				continue
			}
			cmd := exec.Command("sh", "-c", c.text)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%s:%d: %s: %v\n%s", filepath.Base(c.doc), c.line, c.text, err, out)
			}
			ran++
		}
	}
	if ran < 4 {
		t.Fatalf("only %d documented commands ran: the extraction is broken", ran)
	}
	t.Logf("%d documented commands ran as written", ran)
}
