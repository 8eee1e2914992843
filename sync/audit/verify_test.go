package audit_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ssmirror/ssmirror/internal/mirrortest"
	"github.com/ssmirror/ssmirror/internal/testserver"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
	"github.com/ssmirror/ssmirror/sync/audit"
)

func verify(t *testing.T, dst store.Target, opts audit.VerifyOptions) *audit.VerifyReport {
	t.Helper()
	rep, err := audit.Verify(t.Context(), dst, opts)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

// wantOnly checks the report's problems are exactly one of kind, about path.
func wantOnly(t *testing.T, rep *audit.VerifyReport, path string, kind audit.ProblemKind) {
	t.Helper()
	if len(rep.Problems) != 1 || rep.Problems[0].Path != path || rep.Problems[0].Problem != kind || rep.Problems[0].Warning {
		t.Fatalf("want exactly one %q problem for %s, got %+v", kind, path, rep.Problems)
	}
	if rep.OK() || rep.Failures() != 1 {
		t.Errorf("report OK=%v failures=%d, want a failure", rep.OK(), rep.Failures())
	}
}

func operatorKeyring(t *testing.T, s *sign.Signer) *sign.Keyring {
	t.Helper()
	var pub bytes.Buffer
	if err := s.WritePublicKeyring(&pub); err != nil {
		t.Fatal(err)
	}
	kr, err := sign.ReadKeyring(&pub)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestVerifyCleanMirror(t *testing.T) {
	filters := []string{"release=noble", "arch=amd64"}
	t.Run("verbatim", func(t *testing.T) {
		up := newUpstream(t, smallConfig(), nil)
		_, dst := newTarget(t)
		run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}})
		want := selected(t, up.stream, filters...)
		for _, opts := range []audit.VerifyOptions{{Keyring: up.keyring}, {Keyring: up.keyring, Deep: true}, {}} {
			rep := verify(t, dst, opts)
			if len(rep.Problems) != 0 {
				t.Errorf("%+v: problems on a clean mirror: %+v", opts, rep.Problems)
			}
			if !rep.FromState || !rep.ContentChecked || rep.Files != len(want) || rep.Items < rep.Files {
				t.Errorf("%+v: from state %v, checked %v, %d items in %d files; want the %d held files", opts, rep.FromState, rep.ContentChecked, rep.Items, rep.Files, len(want))
			}
			if opts.Deep && rep.Hashed != len(want) {
				t.Errorf("deep verify hashed %d files, want %d", rep.Hashed, len(want))
			}
			if rep.SignaturesChecked != (opts.Keyring != nil) {
				t.Errorf("signatures checked: %v", rep.SignaturesChecked)
			}
		}
	})
	t.Run("curated", func(t *testing.T) {
		up := newUpstream(t, smallConfig(), nil)
		_, dst := newTarget(t)
		operator := loadSigner(t, "other-signing-key.asc")
		run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}, Publishing: sync.Publishing{Signer: operator}})
		rep := verify(t, dst, audit.VerifyOptions{Keyring: operatorKeyring(t, operator), Deep: true})
		if len(rep.Problems) != 0 || rep.Files != len(selected(t, up.stream, filters...)) {
			t.Errorf("curated mirror: %d files, problems %+v", rep.Files, rep.Problems)
		}
		// Upstream's keyring does not verify the operator's signatures: every form is named.
		rep = verify(t, dst, audit.VerifyOptions{Keyring: up.keyring})
		if rep.OK() || rep.Problems[0].Problem != audit.ProblemSignature {
			t.Fatalf("curated mirror checked with upstream's keyring: %+v", rep.Problems)
		}
		names := map[string]bool{}
		for _, p := range rep.Problems {
			names[p.Path] = true
		}
		if !names["streams/v1/index.sjson"] || !names["streams/v1/index.json.gpg"] {
			t.Errorf("signature failures do not name both signed index forms: %+v", rep.Problems)
		}
		// The content was still audited, reading the metadata unchecked.
		if !rep.ContentChecked || rep.Files == 0 {
			t.Errorf("content not audited after a signature failure: %+v", rep)
		}
	})
}

// damagedMirror mirrors a selection and returns the target and one held content path.
func damagedMirror(t *testing.T) (*upstream, string, store.Target, string) {
	t.Helper()
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	filters := []string{"release=jammy", "arch=amd64"}
	run(t, up, dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}})
	var victim string
	for _, p := range selected(t, up.stream, filters...) {
		if strings.HasSuffix(p, "/squashfs") {
			victim = p
		}
	}
	if victim == "" {
		t.Fatal("no squashfs selected")
	}
	return up, dir, dst, victim
}

func TestVerifyFindsDamage(t *testing.T) {
	t.Run("deleted", func(t *testing.T) {
		up, dir, dst, victim := damagedMirror(t)
		if err := os.Remove(filepath.Join(dir, victim)); err != nil {
			t.Fatal(err)
		}
		wantOnly(t, verify(t, dst, audit.VerifyOptions{Keyring: up.keyring}), victim, audit.ProblemMissing)
	})
	t.Run("truncated", func(t *testing.T) {
		up, dir, dst, victim := damagedMirror(t)
		if err := os.Truncate(filepath.Join(dir, victim), 100); err != nil {
			t.Fatal(err)
		}
		wantOnly(t, verify(t, dst, audit.VerifyOptions{Keyring: up.keyring}), victim, audit.ProblemSize)
		wantOnly(t, verify(t, dst, audit.VerifyOptions{Keyring: up.keyring, Deep: true}), victim, audit.ProblemSize)
	})
	t.Run("flipped byte, mtime restored", func(t *testing.T) {
		// Bit rot: same size, same mtime, so the recorded hash still looks valid. Only --deep
		// can see it.
		up, dir, dst, victim := damagedMirror(t)
		p := filepath.Join(dir, victim)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x40
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		wantOnly(t, verify(t, dst, audit.VerifyOptions{Keyring: up.keyring, Deep: true}), victim, audit.ProblemSHA256)
	})
	t.Run("replaced through the store", func(t *testing.T) {
		// Other content of the same size written through the store records its own sha256:
		// caught from the recorded hash, without reading.
		up, _, dst, victim := damagedMirror(t)
		info, err := dst.Stat(t.Context(), victim)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.PutBytes(t.Context(), dst, victim, bytes.Repeat([]byte("x"), int(info.Size)), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		rep := verify(t, dst, audit.VerifyOptions{Keyring: up.keyring})
		wantOnly(t, rep, victim, audit.ProblemSHA256)
		if rep.Hashed != 0 {
			t.Errorf("non-deep verify read %d files", rep.Hashed)
		}
	})
	t.Run("tampered index.sjson", func(t *testing.T) {
		up, dir, dst, _ := damagedMirror(t)
		p := filepath.Join(dir, "streams/v1/index.sjson")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		evil := bytes.Replace(data, []byte(`"image-ids"`), []byte(`"image-idz"`), 1)
		if bytes.Equal(evil, data) {
			t.Fatal("could not tamper with the index")
		}
		if err := os.WriteFile(p, evil, 0o644); err != nil {
			t.Fatal(err)
		}
		rep := verify(t, dst, audit.VerifyOptions{Keyring: up.keyring})
		var sig bool
		for _, pr := range rep.Problems {
			if pr.Problem == audit.ProblemSignature && pr.Path == "streams/v1/index.sjson" && strings.Contains(pr.Detail, "bad signature") {
				sig = true
			}
		}
		if !sig || rep.OK() {
			t.Errorf("want a signature failure naming streams/v1/index.sjson, got %+v", rep.Problems)
		}
		// Without a keyring the disagreement between index.sjson and index.json is still a fault.
		if rep := verify(t, dst, audit.VerifyOptions{}); rep.OK() {
			t.Errorf("tampered index accepted without a keyring: %+v", rep)
		}
	})
}

func TestVerifyWithoutState(t *testing.T) {
	// A mirror of everything, its state removed (as if written by another tool): every item the
	// catalogue lists is checked; an object whose recorded hash is gone is a warning only.
	up := newUpstream(t, smallConfig(), nil)
	dir, dst := newTarget(t)
	run(t, up, dst, sync.Options{})
	if err := os.Remove(filepath.Join(dir, sync.StateKey)); err != nil {
		t.Fatal(err)
	}
	rep := verify(t, dst, audit.VerifyOptions{Keyring: up.keyring})
	if rep.FromState || len(rep.Problems) != 0 || rep.Items != len(up.stream.Items) {
		t.Fatalf("from state %v, %d items (want %d), problems %+v", rep.FromState, rep.Items, len(up.stream.Items), rep.Problems)
	}
	victim := up.stream.Items[0].Path
	p := filepath.Join(dir, victim)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Rewritten by something else with a later mtime: the recorded hash no longer applies.
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	rep = verify(t, dst, audit.VerifyOptions{Keyring: up.keyring})
	if len(rep.Problems) != 1 || rep.Problems[0].Path != victim || rep.Problems[0].Problem != audit.ProblemUnknownHash || !rep.Problems[0].Warning || !rep.OK() {
		t.Fatalf("want one unknown-hash warning for %s, got %+v", victim, rep.Problems)
	}
	if rep := verify(t, dst, audit.VerifyOptions{Keyring: up.keyring, Deep: true}); len(rep.Problems) != 0 {
		t.Errorf("deep verify of intact content: %+v", rep.Problems)
	}
}

// failingStore fails reads of one key with an I/O error (not a not-found), as a backend does:
// in a *store.Error naming the key.
type failingStore struct {
	store.Target
	key string
}

var errDisk = errors.New("input/output error")

func (f *failingStore) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	if key == f.key {
		return nil, &store.Error{Op: "open", Key: key, Err: errDisk}
	}
	return f.Target.Open(ctx, key, offset)
}

func TestVerifyReadFailureIsAnError(t *testing.T) {
	up, _, dst, victim := damagedMirror(t)
	for _, c := range []struct {
		key  string
		deep bool
	}{{"streams/v1/index.sjson", false}, {victim, true}} {
		rep, err := audit.Verify(t.Context(), &failingStore{dst, c.key}, audit.VerifyOptions{Keyring: up.keyring, Deep: c.deep})
		if !errors.Is(err, errDisk) || rep != nil {
			t.Errorf("unreadable %s: want the read error, got %v and report %+v", c.key, err, rep)
		}
	}
}

func TestVerifyS3(t *testing.T) {
	up := newUpstream(t, smallConfig(), nil)
	e := newS3Target(t, testserver.KindMinIO)
	filters := []string{"release=noble", "arch=arm64"}
	run(t, up, e.dst, sync.Options{Selection: sync.Selection{Filters: mustParse(t, filters...), Max: 1}})
	want := selected(t, up.stream, filters...)
	rep := verify(t, e.dst, audit.VerifyOptions{Keyring: up.keyring})
	if len(rep.Problems) != 0 || rep.Files != len(want) {
		t.Fatalf("clean bucket mirror: %d files (want %d), problems %+v", rep.Files, len(want), rep.Problems)
	}
	victim := want[0]
	if err := e.mc.RemoveObject(t.Context(), e.bucket, "maas/stable/"+victim, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	wantOnly(t, verify(t, e.dst, audit.VerifyOptions{Keyring: up.keyring}), victim, audit.ProblemMissing)

	// Replaced behind the mirror's back by other bytes of the same size (no recorded sha256 on
	// the new object): the state's sha256 was for another object, so it is not vouched for.
	replaced := want[1]
	obj, err := e.mc.GetObject(t.Context(), e.bucket, "maas/stable/"+replaced, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.mc.PutObject(t.Context(), e.bucket, "maas/stable/"+replaced, bytes.NewReader(mirrortest.Flipped(data)), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	rep = verify(t, e.dst, audit.VerifyOptions{Keyring: up.keyring})
	found := false
	for _, p := range rep.Problems {
		if p.Path == replaced && p.Problem == audit.ProblemUnknownHash && strings.Contains(p.Detail, "replaced since the mirror wrote it") {
			found = true
		}
	}
	if !found {
		t.Errorf("plain verify after %s was replaced: %+v, want it reported as replaced", replaced, rep.Problems)
	}
}
