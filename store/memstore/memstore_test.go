package memstore_test

import (
	"testing"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/memstore"
	"github.com/ssmirror/ssmirror/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Target { return memstore.New() })
}

func TestSourceConformance(t *testing.T) {
	storetest.RunSource(t, func(t *testing.T) store.Source { return storetest.Seed(t, memstore.New()) })
}

func TestCopierFrom(t *testing.T) {
	storetest.RunCopierFrom(t, func(t *testing.T) (store.Target, store.Target) { return memstore.New(), memstore.New() })
}
