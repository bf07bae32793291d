package storage_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendcore/sendcore/storage"
	"github.com/sendcore/sendcore/storage/storetest"
)

func openDB(t *testing.T, dir string, opts storage.Options) *storage.DB {
	t.Helper()
	db, err := storage.Open(dir, opts, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

// TestContract runs the store contract suite against Badger, with and without the
// in-memory opt-out filter.
func TestContract(t *testing.T) {
	for _, c := range []struct {
		name string
		opts storage.Options
	}{
		{"filter", storage.Options{}},
		{"nofilter", storage.Options{NoOptOutFilter: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, dir string) storetest.Stores { return openDB(t, dir, c.opts) })
		})
	}
}
