package gateway

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestClientTLSErrorsAreNotWarnings: net/http's line for one client's failed TLS handshake goes
// to zap at debug; its other lines at warn; none to the standard logger.
func TestClientTLSErrorsAreNotWarnings(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	l := httpErrorLog(zap.New(core))
	l.Printf("http: TLS handshake error from %s: %v", "198.51.100.7:40000", "EOF")
	l.Printf("http: Accept error: %v; retrying in %v", "too many open files", "5ms")
	entries := logs.All()
	if len(entries) != 2 || entries[0].Level != zapcore.DebugLevel || entries[1].Level != zapcore.WarnLevel {
		t.Fatalf("log entries %+v; want the handshake error at debug, the accept error at warn", entries)
	}
}
