package api

import (
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestClientConnectionErrorsAreNotWarnings: a client can make fasthttp fail its connection as
// often as it likes (a body over the limit, a malformed request), so those lines are debug;
// fasthttp's other messages (accept errors) stay warnings.
func TestClientConnectionErrorsAreNotWarnings(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	l := fasthttpLogger{zap.New(core)}
	l.Printf("error when serving connection %q<->%q: %v", "127.0.0.1:8080", "198.51.100.7:40000", errors.New("body size exceeds the given limit"))
	l.Printf("Permanent error when accepting new connections: %v", errors.New("too many open files"))
	entries := logs.All()
	if len(entries) != 2 || entries[0].Level != zapcore.DebugLevel || entries[1].Level != zapcore.WarnLevel {
		t.Fatalf("log entries %+v; want the connection error at debug, the accept error at warn", entries)
	}
}
