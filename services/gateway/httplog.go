package gateway

import (
	"log"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// httpErrorLog is the gateway's http.Server ErrorLog: net/http's messages go to zap instead of
// the standard logger, one client's failed TLS handshake at debug (any client can cause as many
// as it likes), everything else (accept errors, handler panics) at warn.
func httpErrorLog(l *zap.Logger) *log.Logger {
	return log.New(httpLogWriter{l.Named("http")}, "", 0)
}

type httpLogWriter struct{ log *zap.Logger }

func (w httpLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := zapcore.WarnLevel
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = zapcore.DebugLevel
	}
	w.log.Log(level, "net/http", zap.String("message", msg))
	return len(p), nil
}
