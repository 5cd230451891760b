package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/store/pebble"
	"github.com/natter-chat/natter/services/recovery"
)

// defaultNATSURL is the embedded NATS of natter run.
const defaultNATSURL = "nats://127.0.0.1:4222"

// bus is a NATS connection for an operator command: to --nats-url, or to an embedded server
// started on the data directory's JetStream files while natter is stopped.
type bus struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	close func()
}

// openBus connects to natsURL, or with natsURL empty starts the embedded NATS of dataDir on a
// free loopback port (natter must not be running on that directory).
func openBus(natsURL, dataDir, name string) (*bus, error) {
	log := zap.NewNop()
	var closers []func()
	b := &bus{close: func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}}
	var srv interface{ ClientURL() string }
	if natsURL == "" {
		dir := filepath.Join(dataDir, "nats")
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("no streams in %s (%w): give --nats-url, or the --data-dir of the natter whose streams to read", dir, err)
		}
		s, err := natsx.StartServer(natsx.ServerConfig{Name: "natter", Dir: dir, Host: "127.0.0.1", Port: -1}, log)
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { s.Shutdown(); s.WaitForShutdown() })
		srv = s
		natsURL = s.ClientURL()
	}
	_ = srv
	nc, err := natsx.Connect(natsURL, name, nil, log)
	if err != nil {
		b.close()
		return nil, err
	}
	closers = append(closers, nc.Close)
	b.nc = nc
	if b.js, err = jetstream.New(nc); err != nil {
		b.close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return b, nil
}

// openStoreOffline opens the embedded store of dataDir; it fails while natter runs on it.
func openStoreOffline(dataDir string) (*pebble.Store, error) {
	dir := filepath.Join(dataDir, "store")
	st, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("the store %s is in use: stop natter first (%w)", dir, err)
		}
		return nil, err
	}
	return st, nil
}

// newBar is a progress bar on stderr.
func newBar(total int64, desc string, bytes bool) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"))
	}
	return progressbar.NewOptions64(total, opts...)
}

// ---- natter backup

const backupUsage = `Usage: natter backup --out DIR [flags]

Makes an online, consistent backup of the embedded store of a running natter: the natter that
holds the store makes a Pebble checkpoint in its data directory, recording for every stream the
sequence it covers; this command copies it to DIR (DIR/store and DIR/manifest.json) and removes
the checkpoint. Run it on the machine of the data directory. With --streams it also writes a
snapshot of every JetStream stream to DIR/streams (see docs/operations.md).

Flags:
`

func backupCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), backupUsage); fs.PrintDefaults() }
	dst := fs.String("out", "", "directory to write the backup to; must not exist or be empty (required)")
	natsURL := fs.String("nats-url", defaultNATSURL, "NATS of the running natter (the default is the embedded server of natter run)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	withStreams := fs.Bool("streams", false, "also snapshot the JetStream streams into DIR/streams")
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dst == "" {
		return errors.New("backup: --out is required")
	}
	if err := emptyDir(*dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	began := time.Now()
	ctx, cancel := signalContext(*timeout)
	defer cancel()
	b, err := openBus(*natsURL, "", "natter backup")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer b.close()
	m, err := recovery.RequestCheckpoint(ctx, b.nc)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	staged := m.Dir
	defer os.RemoveAll(staged)
	bar := newBar(m.Bytes, "store   ", true)
	if err := copyTree(ctx, staged, filepath.Join(*dst, "store"), bar); err != nil {
		return fmt.Errorf("backup: copy %s: %w", staged, err)
	}
	_ = bar.Finish()
	m.Dir = ""
	var snaps []streamSnapshot
	if *withStreams {
		if snaps, err = snapshotStreams(ctx, b.js, b.nc, filepath.Join(*dst, "streams")); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	if err := writeJSON(filepath.Join(*dst, "manifest.json"), m); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.RemoveAll(staged); err != nil {
		return fmt.Errorf("backup: remove checkpoint %s: %w", staged, err)
	}
	fmt.Fprintf(out, "backup written to %s in %s\n", *dst, time.Since(began).Round(time.Millisecond))
	fmt.Fprintf(out, "  %-10s %d files, %s (checkpoint at %s)\n", "store", m.Files, humanBytes(m.Bytes), m.CreatedAt.Format(time.RFC3339))
	for _, s := range sortedKeys(m.Positions) {
		r := m.Streams[s]
		fmt.Fprintf(out, "  %-10s covers seq 1..%d (the stream held %d..%d); a restore replays from %d\n", s, m.Positions[s], r.First, r.Last, m.Positions[s]+1)
	}
	for _, s := range snaps {
		fmt.Fprintf(out, "  %-10s stream snapshot: %d messages (seq %d..%d), %s\n", s.Stream, s.Msgs, s.First, s.Last, humanBytes(s.Bytes))
	}
	return nil
}

// ---- natter restore

const restoreUsage = `Usage: natter restore --from DIR [flags]

Restores a backup made by natter backup into --data-dir (natter must be stopped), then replays
every stream from the sequence the backup covers to the stream's end, so the store ends where
the streams are. With --streams (and a backup made with --streams) the JetStream streams are
restored first. The store already in the data directory is kept aside with --force.

Flags:
`

func restoreCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), restoreUsage); fs.PrintDefaults() }
	from := fs.String("from", "", "backup directory made by natter backup (required)")
	dataDir := fs.String("data-dir", "./data", "natter's data directory to restore into")
	natsURL := fs.String("nats-url", "", "NATS whose streams to replay from; empty starts the embedded NATS of --data-dir")
	force := fs.Bool("force", false, "move a store already in --data-dir aside (to store.replaced-<time>) instead of refusing")
	noReplay := fs.Bool("no-replay", false, "only put the backup's store in place; natter run replays the gap when it starts")
	withStreams := fs.Bool("streams", false, "also restore the streams from DIR/streams (the embedded NATS of --data-dir must hold none of them)")
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" {
		return errors.New("restore: --from is required")
	}
	var m recovery.Manifest
	b, err := os.ReadFile(filepath.Join(*from, "manifest.json"))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return fmt.Errorf("restore: %s is not a natter backup: %w", *from, err)
	}
	if m.Version != recovery.ManifestVersion {
		return fmt.Errorf("restore: backup version %d, this natter reads version %d", m.Version, recovery.ManifestVersion)
	}
	began := time.Now()
	ctx, cancel := signalContext(0)
	defer cancel()
	dst := filepath.Join(*dataDir, "store")
	if err := emptyDir(dst); err != nil && !emptyStore(*dataDir) {
		if !*force {
			return fmt.Errorf("restore: %w (stop natter; --force moves it aside)", err)
		}
		aside := dst + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(dst, aside); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		fmt.Fprintf(out, "the store that was in %s is now in %s\n", dst, aside)
	} else if err := os.RemoveAll(dst); err != nil { // nothing, or a store without a record
		return fmt.Errorf("restore: %w", err)
	}
	_, size, err := recovery.DirSize(filepath.Join(*from, "store"))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	bar := newBar(size, "store   ", true)
	if err := copyTree(ctx, filepath.Join(*from, "store"), dst, bar); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	_ = bar.Finish()
	fmt.Fprintf(out, "store restored to %s (%s, backup of %s)\n", dst, humanBytes(size), m.CreatedAt.Format(time.RFC3339))
	if *withStreams {
		if err := restoreStreams(ctx, *natsURL, *dataDir, filepath.Join(*from, "streams"), out); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	if *noReplay {
		fmt.Fprintln(out, "not replayed (--no-replay): natter run replays the streams from the backup's positions when it starts")
		return nil
	}
	st, err := openStoreOffline(*dataDir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer st.Close()
	bs, err := openBus(*natsURL, *dataDir, "natter restore")
	if err != nil {
		return fmt.Errorf("restore: the store is restored but not replayed: %w", err)
	}
	defer bs.close()
	for _, p := range recovery.Projections() {
		res, err := catchUpStream(ctx, bs, st, p, out)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		_ = res
	}
	fmt.Fprintf(out, "restore done in %s: start natter run on %s\n", time.Since(began).Round(time.Millisecond), *dataDir)
	return nil
}

// catchUpStream replays p's stream into st from the store's position to the stream's end and
// records the new position.
func catchUpStream(ctx context.Context, bs *bus, st *pebble.Store, p recovery.Projection, out io.Writer) (recovery.Result, error) {
	pos, _, err := st.Position(ctx, p.Stream)
	if err != nil {
		return recovery.Result{}, err
	}
	s, err := bs.js.Stream(ctx, p.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		fmt.Fprintf(out, "  %-10s no such stream here: nothing to replay (the store holds it up to seq %d)\n", p.Stream, pos)
		return recovery.Result{}, nil
	}
	if err != nil {
		return recovery.Result{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return recovery.Result{}, err
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if last <= pos {
		fmt.Fprintf(out, "  %-10s store at seq %d, stream ends at %d: nothing to replay\n", p.Stream, pos, last)
		return recovery.Result{}, nil
	}
	if info.State.Msgs > 0 && first > pos+1 {
		return recovery.Result{}, fmt.Errorf("%s: the store holds up to seq %d but the stream starts at %d: events %d..%d are in neither (use a newer backup)",
			p.Stream, pos, first, pos+1, first-1)
	}
	bar := newBar(int64(last-pos), fmt.Sprintf("%-8s", p.Stream), false)
	res, err := recovery.Run(ctx, bs.js, bs.nc, p.Stream, recovery.Target{Apply: recovery.Applier(st, p, zap.NewNop())},
		recovery.Options{Range: recovery.Range{FromSeq: pos + 1, ToSeq: last}, Progress: func(done, _ uint64) { _ = bar.Set64(int64(done - pos)) }})
	if err != nil {
		return res, err
	}
	_ = bar.Finish()
	if err := st.RecordPosition(ctx, p.Stream, last); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "  %-10s replayed seq %d..%d: %d events (%s), %d rejected; store now at seq %d\n",
		p.Stream, pos+1, last, res.Events, kinds(res.Kinds), res.Rejected, last)
	return res, nil
}

// ---- natter replay

const replayUsage = `Usage: natter replay [flags]

Re-drives a range of a stream, in stream order: counts its events (the default, a dry run),
applies them to the store (--apply; idempotent, natter must be stopped), or republishes them
onto a subject for a consumer being added or repaired (--to-subject). --apply and --to-subject
keep their position in a file and resume there when run again after Ctrl-C.

Flags:
`

func replayCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), replayUsage); fs.PrintDefaults() }
	streamFlag := fs.String("stream", "all", "stream to replay: "+projectionNames()+", or all")
	var r recovery.Range
	fs.Uint64Var(&r.FromSeq, "from-seq", 0, "first seq (default: the stream's first)")
	fs.Uint64Var(&r.ToSeq, "to-seq", 0, "last seq (default: the stream's last when the replay starts)")
	since := fs.String("since", "", "first event at or after this time (RFC 3339), when --from-seq is not given")
	until := fs.String("until", "", "last event at or before this time (RFC 3339), when --to-seq is not given")
	apply := fs.Bool("apply", false, "apply the events to the store of --data-dir (natter must be stopped)")
	subject := fs.String("to-subject", "", "republish every event onto this subject (JetStream publish if a stream captures it), with Natter-Stream/Natter-Seq/Natter-Subject headers")
	dataDir := fs.String("data-dir", "./data", "natter's data directory (its store for --apply, its streams when --nats-url is empty)")
	natsURL := fs.String("nats-url", "", "NATS to read the streams from; empty starts the embedded NATS of --data-dir (natter stopped). Give nats://127.0.0.1:4222 to read from a running natter")
	posFile := fs.String("position-file", "", "where to keep the position for resuming (default <data-dir>/replay/<stream>.<target>.json)")
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if r.Since, r.Until, err = parseRange(*since, *until); err != nil {
		return err
	}
	if *apply && *subject != "" {
		return errors.New("replay: --apply and --to-subject exclude each other")
	}
	var ps []recovery.Projection
	if strings.EqualFold(*streamFlag, "all") {
		ps = recovery.Projections()
	} else if p, ok := recovery.Find(*streamFlag); ok {
		ps = []recovery.Projection{p}
	} else {
		return fmt.Errorf("replay: unknown stream %q (want %s or all)", *streamFlag, projectionNames())
	}
	ctx, cancel := signalContext(0)
	defer cancel()
	var st *pebble.Store
	if *apply || *natsURL == "" {
		// The store is opened even for a dry run from the embedded NATS: its lock keeps this
		// command from starting a second NATS on the files of a running natter.
		if st, err = openStoreOffline(*dataDir); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer st.Close()
	}
	bs, err := openBus(*natsURL, *dataDir, "natter replay")
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer bs.close()
	mode := "dry run (counts only; --apply writes to the store, --to-subject republishes)"
	switch {
	case *apply:
		mode = "applied to the store " + filepath.Join(*dataDir, "store")
	case *subject != "":
		mode = "republished to " + *subject
	}
	fmt.Fprintf(out, "replay: %s\n", mode)
	for _, p := range ps {
		target := recovery.Target{Subject: *subject}
		name := "count"
		switch {
		case *apply:
			target.Apply, name = recovery.Applier(st, p, zap.NewNop()), "store"
		case *subject != "":
			name = "subject"
		}
		opts := recovery.Options{Range: r}
		if name != "count" {
			opts.PositionFile = *posFile
			if opts.PositionFile == "" {
				opts.PositionFile = filepath.Join(*dataDir, "replay", p.Stream+"."+name+".json")
			}
		}
		var bar *progressbar.ProgressBar
		opts.Progress = func(done, last uint64) {
			if bar == nil {
				bar = newBar(int64(last), fmt.Sprintf("%-8s", p.Stream), false)
			}
			_ = bar.Set64(int64(done))
		}
		res, err := recovery.Run(ctx, bs.js, bs.nc, p.Stream, target, opts)
		if bar != nil {
			_ = bar.Finish()
		}
		if res.Resumed != 0 {
			fmt.Fprintf(out, "  %-10s resumed at seq %d (%s)\n", p.Stream, res.Resumed, opts.PositionFile)
		}
		if err != nil {
			if ctx.Err() != nil && opts.PositionFile != "" {
				return fmt.Errorf("replay: %w; run the same command again to resume", err)
			}
			return fmt.Errorf("replay: %w", err)
		}
		if res.Events == 0 {
			fmt.Fprintf(out, "  %-10s no events in range\n", p.Stream)
			continue
		}
		fmt.Fprintf(out, "  %-10s seq %d..%d: %d events (%s)", p.Stream, res.From, res.Last, res.Events, kinds(res.Kinds))
		if res.Rejected > 0 {
			fmt.Fprintf(out, ", %d rejected", res.Rejected)
		}
		fmt.Fprintln(out)
		if *apply {
			// A replay that started at or below the store's position and went on without a
			// hole raises it.
			if pos, _, err := st.Position(ctx, p.Stream); err == nil && (res.From <= pos+1 || res.Resumed != 0 && r.FromSeq <= pos+1) {
				if err := st.RecordPosition(ctx, p.Stream, res.Last); err != nil {
					return fmt.Errorf("replay: %w", err)
				}
			}
		}
	}
	return nil
}

// ---- helpers

// emptyStore reports whether the store of dataDir opens and holds no record and no position (as a
// refused natter run leaves it).
func emptyStore(dataDir string) bool {
	st, err := openStoreOffline(dataDir)
	if err != nil {
		return false
	}
	defer st.Close()
	ctx := context.Background()
	if empty, err := st.Empty(ctx); err != nil || !empty {
		return false
	}
	for _, p := range recovery.Projections() {
		if _, ok, err := st.Position(ctx, p.Stream); err != nil || ok {
			return false
		}
	}
	return true
}

func projectionNames() string {
	var names []string
	for _, p := range recovery.Projections() {
		names = append(names, p.Stream)
	}
	return strings.Join(names, ", ")
}

// parseRange parses --since and --until (RFC 3339, empty: no bound).
func parseRange(since, until string) (time.Time, time.Time, error) {
	from, err := parseTime("--since", since)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	to, err := parseTime("--until", until)
	return from, to, err
}

func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want RFC 3339, e.g. 2026-12-01T10:00:00Z", name, s)
	}
	return t, nil
}

// signalContext ends on Ctrl-C or SIGTERM, and after timeout when it is positive.
func signalContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	if timeout <= 0 {
		return ctx, stop
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, func() { cancel(); stop() }
}

// emptyDir succeeds when dir does not exist or is an empty directory.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty", dir)
	}
	return nil
}

// copyTree copies the regular files under src to dst (created), syncing each, and adds the
// bytes copied to bar.
func copyTree(ctx context.Context, src, dst string, bar io.Writer) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return copyFile(path, target, bar)
	})
}

func copyFile(src, dst string, bar io.Writer) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.MultiWriter(out, bar), in); err != nil {
		return errors.Join(err, out.Close())
	}
	return errors.Join(out.Sync(), out.Close())
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func kinds(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
