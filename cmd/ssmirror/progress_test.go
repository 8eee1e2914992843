package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/internal/testkeys"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/httpstore"
	"github.com/ssmirror/ssmirror/streams"
	"github.com/ssmirror/ssmirror/sync"
)

var ansi = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")

// TestLiveProgressShowsFilesInFlight renders the terminal display of a real, throttled sync into
// a buffer: it names files while they transfer and ends with the run's totals.
func TestLiveProgressShowsFilesInFlight(t *testing.T) {
	cfg := streamtest.SmallConfig()
	cfg.SquashfsSize = 3 << 20
	s, err := streamtest.Generate(cfg, testkeys.Signer(t, testkeys.SigningKey))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep, stop, err := syncShowingProgress(t, &throttled{h: s.Handler()}, &out, 20*time.Millisecond)
	stop()
	if err != nil {
		t.Fatal(err)
	}
	text := ansi.ReplaceAllString(out.String(), "")
	if !strings.Contains(text, "amd64/20250718/squashfs") { // the name column keeps a path's end
		t.Errorf("no file bar named the squashfs in flight:\n%s", text)
	}
	if rep.Fetched == 0 {
		t.Fatal("the run fetched nothing")
	}
	if want := fmt.Sprintf("%d/%d files", rep.Fetched, rep.Fetched); !strings.Contains(text, want) {
		t.Errorf("the display does not end with the run's totals:\n%s", text)
	}
}

func TestPeriodicProgressLines(t *testing.T) {
	var out bytes.Buffer
	p := &sync.Progress{}
	stop := periodicProgress(p, &out, time.Hour)
	stop()
	if out.Len() != 0 {
		t.Errorf("a run with nothing to transfer printed %q", out.String())
	}
}

// TestLiveProgressEndsOnFailure: a run that fails with files in flight still ends the display
// (mpb waits for every bar; a bar left running would hang the command).
func TestLiveProgressEndsOnFailure(t *testing.T) {
	s, err := streamtest.Generate(streamtest.SmallConfig(), testkeys.Signer(t, testkeys.SigningKey))
	if err != nil {
		t.Fatal(err)
	}
	h := &throttled{h: s.Handler()} // the other files are still in flight when the squashfs fails
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/squashfs") {
			time.Sleep(100 * time.Millisecond) // a few display ticks
			http.Error(w, "gone", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})
	var out bytes.Buffer
	_, stop, err := syncShowingProgress(t, up, &out, 10*time.Millisecond)
	if err == nil {
		t.Fatal("a run whose squashfs never arrives whole succeeded")
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the progress display did not end after a failed run")
	}
}

// syncShowingProgress mirrors noble/amd64 (newest version) from upstream into a new directory,
// one request per file, with the live display drawing into out every tick. The caller stops
// the display.
func syncShowingProgress(t *testing.T, upstream http.Handler, out *bytes.Buffer, tick time.Duration) (*sync.Report, func(), error) {
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	src, _ := httpstore.New(up.Client(), up.URL, httpstore.Options{})
	dst, _ := dirstore.New(t.TempDir(), dirstore.Options{})
	filters, _ := streams.ParseFilters([]string{"release=noble", "arch=amd64"})
	p := &sync.Progress{}
	stop := liveProgress(p, out, tick)
	rep, err := sync.Run(t.Context(), src, dst, sync.Options{
		Selection: sync.Selection{Verification: sync.Verification{Keyring: testkeys.LoadKeyring(t, testkeys.Keyring)}, Filters: filters, Max: 1},
		Tuning:    sync.Tuning{RangeStreams: 1},
		Hooks:     sync.Hooks{Progress: p},
	})
	return rep, stop, err
}
