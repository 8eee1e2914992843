package dirstore_test

import (
	"testing"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/dirstore"
	"github.com/ssmirror/ssmirror/store/storetest"
)

func newStore(t *testing.T, opts dirstore.Options) *dirstore.Store {
	t.Helper()
	s, err := dirstore.New(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t, dirstore.Options{}) })
}
