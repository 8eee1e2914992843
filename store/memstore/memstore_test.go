package memstore_test

import (
	"testing"

	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/store/memstore"
	"github.com/ssmirror/ssmirror/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
}
