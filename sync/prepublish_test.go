package sync_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ssmirror/ssmirror/internal/targettest"
	"github.com/ssmirror/ssmirror/store"
	"github.com/ssmirror/ssmirror/sync"
)

// TestGoneBeforePublishRefused: a content object deleted, or replaced by one of another size,
// after the run wrote it and before it publishes (someone else's cleanup, a lifecycle rule)
// stops the publish: the run fails naming the object, no metadata reaches the target, and the
// next run fetches the object again and publishes a complete mirror.
func TestGoneBeforePublishRefused(t *testing.T) {
	targettest.Each(t, []targettest.Kind{targettest.Directory, targettest.MinIO}, targettest.Options{Parallel: true}, func(t *testing.T, kind targettest.Kind) {
		for _, how := range []string{"deleted", "resized"} {
			t.Run(how, func(t *testing.T) {
				tg := targettest.New(t, kind, targettest.Options{})
				ctx := t.Context()
				up := newUpstream(t, smallConfig(), nil)
				dst := tg.Store
				opts := sync.Options{Selection: sync.Selection{Filters: mustParse(t, "arch=amd64"), Max: 1, Verification: sync.Verification{Keyring: up.keyring}}}
				var victim string
				opts.OnTransfer = func(int64) func() {
					return func() { // the transfer is over, the publish not begun
						var content []string
						if err := dst.List(ctx, "", func(info store.Info) error {
							if !strings.HasPrefix(info.Key, "streams/") && !strings.HasPrefix(info.Key, ".ssmirror/") {
								content = append(content, info.Key)
							}
							return nil
						}); err != nil {
							t.Error(err)
							return
						}
						slices.Sort(content)
						if len(content) == 0 {
							t.Error("no content written before the publish")
							return
						}
						victim = content[len(content)/2]
						var err error
						if how == "deleted" {
							err = dst.Delete(ctx, victim)
						} else {
							_, err = dst.Put(ctx, victim, strings.NewReader("short"), store.PutOptions{Size: 5})
						}
						if err != nil {
							t.Error(err)
						}
					}
				}
				_, err := sync.Run(ctx, up.src, dst, opts)
				if !errors.Is(err, sync.ErrHeldGone) || victim == "" || !strings.Contains(err.Error(), victim) {
					t.Fatalf("run with %s %s: %v; want ErrHeldGone naming it", how, victim, err)
				}
				var published []string
				if err := dst.List(ctx, "streams/", func(info store.Info) error {
					published = append(published, info.Key)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if len(published) != 0 {
					t.Errorf("metadata published although %s was %s: %v", victim, how, published)
				}
				t.Logf("refused: %v", err)

				opts.OnTransfer = nil
				rep, err := sync.Run(ctx, up.src, dst, opts)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Fetched != 1 {
					t.Errorf("the next run fetched %d files, want the %s one again", rep.Fetched, how)
				}
				info, err := dst.Stat(ctx, victim)
				if err != nil || info.Size != up.stream.Content[victim] {
					t.Errorf("%s after the next run: %+v, %v", victim, info, err)
				}
			})
		}
	})
}
