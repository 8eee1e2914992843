//go:build !linux

package main

// peakRSS is 0 (reported as 0 MB) outside Linux, where this benchmark does not read it.
func peakRSS() int64 { return 0 }
