package scylla

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: the driver starts many
// (connection pools, control connection, event handling) and Close must stop them all.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
