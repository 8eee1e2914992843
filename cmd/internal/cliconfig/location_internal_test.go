package cliconfig

import "testing"

// TestS3StoresShareOneBufferBudget: every S3 store opened with one set of flags (the targets of
// a run) gets the same part-buffer budget, --upload-buffers for the run; other flags, another.
func TestS3StoresShareOneBufferBudget(t *testing.T) {
	f := &S3Flags{uploadBuffers: 64 << 20, partSize: 8 << 20}
	a, b := f.sharedBuffers(), f.sharedBuffers()
	if a != b {
		t.Fatal("two stores of one run got two buffer budgets")
	}
	if a.Budget() != 64<<20 || a.PartSize() != 8<<20 {
		t.Errorf("budget %d, part size %d; want 64 MiB of 8 MiB parts", a.Budget(), a.PartSize())
	}
	f.uploadBuffers = 32 << 20
	if c := f.sharedBuffers(); c == a || c.Budget() != 32<<20 {
		t.Errorf("after the flags changed: budget %d (same as before: %v)", c.Budget(), c == a)
	}
}
