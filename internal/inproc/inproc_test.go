package inproc_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/internal/inproc"
)

// TestSlowBodyOnFakeTime: a body that sends a byte an hour arrives whole in a bubble, its hours
// passing on the fake clock; a short body is io.ErrUnexpectedEOF.
func TestSlowBodyOnFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := inproc.Client(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/short" {
				w.Header().Set("Content-Length", "10")
				io.WriteString(w, "abc")
				return
			}
			w.Header().Set("Content-Length", "3")
			w.WriteHeader(http.StatusPartialContent)
			for _, c := range "xyz" {
				time.Sleep(time.Hour)
				io.WriteString(w, string(c))
			}
		}))
		began := time.Now()
		resp, err := client.Get(inproc.URL + "slow")
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(data) != "xyz" || resp.StatusCode != http.StatusPartialContent || resp.ContentLength != 3 {
			t.Errorf("got %q, %v, status %d, length %d", data, err, resp.StatusCode, resp.ContentLength)
		}
		if took := time.Since(began); took != 3*time.Hour {
			t.Errorf("the body took %v of fake time, want 3h", took)
		}
		resp, err = client.Get(inproc.URL + "short")
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("a short body: %v, want io.ErrUnexpectedEOF", err)
		}
	})
}

// TestCancelEndsTheHandler: cancelling the request fails the pending read and the handler sees
// its context done; nothing is left running (the bubble would not end otherwise).
func TestCancelEndsTheHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handlerDone := make(chan error, 1)
		client := inproc.Client(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "head")
			<-r.Context().Done()
			handlerDone <- r.Context().Err()
		}))
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, inproc.URL+"x", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 4)
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "head" {
			t.Fatalf("%q %v", buf, err)
		}
		go func() {
			time.Sleep(time.Minute)
			cancel()
		}()
		_, err = resp.Body.Read(buf)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: %v", err)
		}
		if err := <-handlerDone; !errors.Is(err, context.Canceled) {
			t.Errorf("the handler's context: %v", err)
		}
		// A body closed unread ends its handler too.
		resp, err = client.Get(inproc.URL + "y")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if err := <-handlerDone; !errors.Is(err, context.Canceled) {
			t.Errorf("the handler's context after Close: %v", err)
		}
	})
}
