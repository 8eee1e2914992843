package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// startLink starts l in front of upstream and returns the proxy's address.
func startLink(t *testing.T, l Link, upstream string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, ln, upstream) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// startServer serves each connection with handle on loopback.
func startServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRateLimited(t *testing.T) {
	const size = 4_000_000
	payload := make([]byte, size)
	rand.Read(payload)
	up := startServer(t, func(c net.Conn) { c.Write(payload) })
	addr := startLink(t, Link{Rate: 8_000_000, Latency: 0}, up)

	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes, not the %d sent (or different content)", len(got), size)
	}
	// 4 MB at 8 MB/s is 0.5 s; allow for the burst and timer slack, never for a free ride.
	if elapsed < 350*time.Millisecond {
		t.Errorf("4 MB at 8 MB/s took %v, want at least 0.35 s", elapsed)
	}
	t.Logf("4 MB at 8 MB/s: %v (%.1f MB/s)", elapsed, size/elapsed.Seconds()/1e6)
}

// TestTotalRateShared: with -total-rate, connections split one budget: four connections of
// 1 MB each at 8 MB/s in all take at least as long as 4 MB on one (each alone may go at 40 MB/s).
// A lower bound only: a loaded machine can make it slower, never faster.
func TestTotalRateShared(t *testing.T) {
	const size, conns = 1_000_000, 4
	payload := make([]byte, size)
	rand.Read(payload)
	up := startServer(t, func(c net.Conn) { c.Write(payload) })
	addr := startLink(t, Link{Rate: 40_000_000, Total: 8_000_000}, up)
	start := time.Now()
	errs := make(chan error, conns)
	for range conns {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			got, err := io.ReadAll(c)
			if err == nil && !bytes.Equal(got, payload) {
				err = io.ErrUnexpectedEOF
			}
			errs <- err
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	// 4 MB at 8 MB/s in all is 0.5 s (per connection alone, 0.1 s); allow for the bursts.
	if elapsed < 350*time.Millisecond {
		t.Errorf("4 x 1 MB at 8 MB/s in all took %v, want at least 0.35 s", elapsed)
	}
	t.Logf("4 x 1 MB at 8 MB/s in all: %v", elapsed)
}

func TestUnlimitedIsFast(t *testing.T) {
	// The same transfer without a rate: shows that the limit above comes from the bucket.
	payload := make([]byte, 4_000_000)
	up := startServer(t, func(c net.Conn) { c.Write(payload) })
	addr := startLink(t, Link{}, up)
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != int64(len(payload)) {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	t.Logf("4 MB unlimited: %v", time.Since(start))
}

func TestEchoBothDirectionsAndLatency(t *testing.T) {
	up := startServer(t, func(c net.Conn) { io.Copy(c, c) })
	const latency = 100 * time.Millisecond
	addr := startLink(t, Link{Rate: 50_000_000, Latency: latency}, up)

	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(c, one); err != nil || one[0] != 'x' {
		t.Fatalf("echo of one byte: %q, %v", one, err)
	}
	// Handshake round trip + request/response round trip.
	if elapsed := time.Since(start); elapsed < 2*latency-20*time.Millisecond {
		t.Errorf("connect and first round trip took %v, want at least %v", elapsed, 2*latency)
	}
	start = time.Now()
	c.Write([]byte{'y'})
	if _, err := io.ReadFull(c, one); err != nil || one[0] != 'y' {
		t.Fatalf("echo of one byte: %q, %v", one, err)
	}
	if elapsed := time.Since(start); elapsed < latency-10*time.Millisecond {
		t.Errorf("a round trip took %v, want at least %v", elapsed, latency)
	}

	// A larger payload both ways, then a half-close: everything comes back, then EOF.
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(payload))
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": true, "localhost:80": true, "[::1]:80": true,
		"10.0.0.1:80": false, "0.0.0.0:80": false, "example.com:80": false, "127.0.0.1": false,
	} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"20MB": 20_000_000, "20M": 20_000_000, "64KiB": 65536, "1.5G": 1_500_000_000, "1024": 1024, "0": 0, "2mib": 2 << 20,
	} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "-1", "twenty"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) succeeded", in)
		}
	}
}

// TestStatsCounts checks -stats' counts: two connections that each send 100 kB towards the
// server and get 2 bytes back are counted as two sending each way, with every byte counted.
func TestStatsCounts(t *testing.T) {
	const size = 100_000
	up := startServer(t, func(c net.Conn) {
		if _, err := io.ReadFull(c, make([]byte, size)); err == nil {
			c.Write([]byte("ok"))
		}
	})
	stats := &Stats{}
	addr := startLink(t, Link{Stats: stats}, up)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			if _, err := c.Write(make([]byte, size)); err != nil {
				done <- err
				return
			}
			_, err = io.ReadFull(c, make([]byte, 2))
			done <- err
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var total Sample
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s := stats.Sample()
		total.Up = max(total.Up, s.Up)
		total.Down = max(total.Down, s.Down)
		total.UpBytes += s.UpBytes
		total.DnBytes += s.DnBytes
		if total.UpBytes == 2*size && total.DnBytes == 4 {
			break
		}
	}
	if total.UpBytes != 2*size || total.DnBytes != 4 {
		t.Fatalf("counted %d bytes up and %d down, want %d and 4", total.UpBytes, total.DnBytes, 2*size)
	}
	if total.Up < 1 || total.Down < 1 {
		t.Errorf("connections sending: %d up, %d down; want at least one each way", total.Up, total.Down)
	}
}
