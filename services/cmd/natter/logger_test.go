package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// runLogger is the logger natter run builds from args, writing to out.
func runLogger(t *testing.T, out *os.File, args ...string) *zap.Logger {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	o := logFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	log, err := newLogger(*o, out)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// Identical lines in a burst are all written: no sampling unless --log-sampling.
func TestLoggerWritesEveryIdenticalLine(t *testing.T) {
	const n = 800
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "log"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			log := runLogger(t, f, "--log-format", format)
			for range n {
				log.Info("push not sent (no FCM credentials configured); it would be", zap.String("token", "…23456789"))
				log.Warn("send failed", zap.String("step", "publish"))
			}
			_ = log.Sync()
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(string(b), "push not sent"); got != n {
				t.Errorf("%d of %d info lines written", got, n)
			}
			if got := strings.Count(string(b), "send failed"); got != n {
				t.Errorf("%d of %d warnings written", got, n)
			}
		})
	}
}

// --log-sampling thins a burst of identical lines.
func TestLoggerSamplesOnlyWhenAsked(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log := runLogger(t, f, "--log-format", "json", "--log-sampling")
	for range 800 {
		log.Info("same line")
	}
	_ = log.Sync()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "same line"); got >= 800 || got < 100 {
		t.Fatalf("%d of 800 lines written with sampling", got)
	}
}

// Console logs written to a pipe (or a file) carry no colour codes.
func TestConsoleLoggerWithoutTerminalHasNoColour(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	log := runLogger(t, w, "--log-format", "console")
	log.Info("hello")
	log.Warn("careful")
	log.Error("failed")
	_ = log.Sync()
	_ = w.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("WARN")) || !bytes.Contains(b, []byte("failed")) {
		t.Fatalf("log lines missing:\n%s", b)
	}
	if i := bytes.IndexByte(b, 0x1b); i >= 0 {
		t.Fatalf("ESC at byte %d of %q", i, b)
	}
}

// Once muted, a logger and every logger derived from it write nothing: a failed start's error
// line stays the last one printed.
func TestMuteCoreDropsEverythingOnceMuted(t *testing.T) {
	var buf bytes.Buffer
	var muted atomic.Bool
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel)).
		WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return muteCore{c, &muted} }))
	child := log.Named("nats").With(zap.String("conn", "x"))
	child.Warn("before")
	muted.Store(true)
	child.Warn("nats disconnected")
	log.Error("after")
	if out := buf.String(); !strings.Contains(out, "before") || strings.Contains(out, "disconnected") || strings.Contains(out, "after") {
		t.Fatalf("log output:\n%s", out)
	}
}
