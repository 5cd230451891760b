// Package pebbletest opens the embedded store for tests: a real Pebble store in the test's
// temporary directory, closed when the test ends. Only tests import it.
package pebbletest

import (
	"testing"

	"github.com/natter-chat/natter/pkg/store/pebble"
)

// Open opens an empty store in t.TempDir() with the default options and closes it when the test
// ends (a test may close it earlier: Close is idempotent). It fails the test if either fails.
func Open(t testing.TB) *pebble.Store {
	t.Helper()
	return OpenWith(t, pebble.Options{})
}

// OpenWith is Open with other options.
func OpenWith(t testing.TB, opts pebble.Options) *pebble.Store {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("pebbletest: open: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("pebbletest: close: %v", err)
		}
	})
	return st
}
