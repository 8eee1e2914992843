package dirstore

import "github.com/ssmirror/ssmirror/store"

// WaitBatchSynced waits until the background syncers of the batch view v (from Store.Batch)
// have synced every file handed to them.
func WaitBatchSynced(v store.Target) {
	p := v.(*batch).p
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.syncers > 0 {
		p.idle.Wait()
	}
}

// SetSyncFault makes s ask fault before each fsync (name as for Options.Trace); an error fails
// that fsync. nil removes it.
func SetSyncFault(s *Store, fault func(name string) error) {
	if fault == nil {
		s.syncFault.Store(nil)
		return
	}
	s.syncFault.Store(&fault)
}
