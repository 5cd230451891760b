package main

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logOptions are natter run's logging flags.
type logOptions struct {
	Level  string // debug, info, warn or error
	Format string // console (for people) or json (for log pipelines)
	// Sampling thins repeated lines: of each message and level, the first 100 in a second,
	// then every 100th. Off: every line is written.
	Sampling bool
}

// logFlags registers the logging flags of natter run.
func logFlags(fs *flag.FlagSet) *logOptions {
	o := &logOptions{}
	fs.StringVar(&o.Level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.Format, "log-format", "console", "console (for people) or json (for log pipelines)")
	fs.BoolVar(&o.Sampling, "log-sampling", false, "thin repeated log lines: of each message, the first 100 per second, then every 100th (default: every line is written)")
	return o
}

// newLogger builds a command's logger writing to out. Console output is coloured only when out
// is a terminal; the caller of each line is recorded, and a stack trace only at debug level.
func newLogger(o logOptions, out *os.File) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(o.Level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	var enc zapcore.Encoder
	switch o.Format {
	case "json":
		enc = zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		if isTerminal(out) {
			ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("log format %q: want console or json", o.Format)
	}
	w := zapcore.Lock(out)
	core := zapcore.NewCore(enc, w, lvl)
	if o.Sampling {
		core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100)
	}
	opts := []zap.Option{zap.AddCaller(), zap.ErrorOutput(w)}
	if lvl <= zapcore.DebugLevel {
		opts = append(opts, zap.AddStacktrace(zapcore.ErrorLevel))
	}
	return zap.New(core, opts...), nil
}

// isTerminal reports whether f is a terminal (a character device), where colour codes render.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// muteCore is a zap core that drops every entry once muted is set.
type muteCore struct {
	zapcore.Core
	muted *atomic.Bool
}

func (c muteCore) Enabled(l zapcore.Level) bool { return !c.muted.Load() && c.Core.Enabled(l) }

func (c muteCore) With(fields []zapcore.Field) zapcore.Core {
	return muteCore{c.Core.With(fields), c.muted}
}

func (c muteCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.muted.Load() {
		return ce
	}
	return c.Core.Check(e, ce)
}
