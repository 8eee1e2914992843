package sync_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssmirror/ssmirror/internal/inproc"
	"github.com/ssmirror/ssmirror/internal/streamtest"
	"github.com/ssmirror/ssmirror/sign"
	"github.com/ssmirror/ssmirror/store/httpstore"
)

// newUpstreamInproc is newUpstream served without a socket (internal/inproc), for tests that run
// in a synctest bubble (fake time: a bubble cannot wait on a real socket). Its server is nil.
func newUpstreamInproc(t *testing.T, cfg streamtest.Config, signer *sign.Signer) *upstream {
	t.Helper()
	if signer == nil {
		signer = loadSigner(t, "test-signing-key.asc")
	}
	s, err := streamtest.Generate(cfg, signer)
	if err != nil {
		t.Fatal(err)
	}
	src, err := httpstore.New(inproc.Client(s.Handler()), inproc.URL, httpstore.Options{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &upstream{stream: s, src: src, keyring: testKeyring(t)}
}

// bubble runs fn in a synctest bubble whose fake clock starts at today's date, not synctest's
// 2000-01-01: the test keys and the signatures they make are not valid before they were made.
func bubble(t *testing.T, fn func(t *testing.T)) {
	now := time.Now()
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(time.Until(now)) // takes no real time: nothing else runs in the bubble yet
		fn(t)
	})
}
