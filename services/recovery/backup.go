package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
)

// BackupSubject is the NATS request subject on which the process holding the embedded store
// makes a checkpoint (natter backup asks it; see docs/operations.md).
const BackupSubject = "natter.admin.backup"

// Manifest describes one backup: written as manifest.json beside the store's checkpoint.
type Manifest struct {
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	// Positions: for each stream, every event at or below this seq is in the checkpoint. A
	// restore replays each stream from the next seq.
	Positions map[string]uint64 `json:"positions"`
	// Streams: each stream's first and last seq when the checkpoint was made.
	Streams map[string]StreamRange `json:"streams"`
	// Dir is where the checkpoint was made (in the running natter's data directory); a backup
	// copies it and removes it.
	Dir   string `json:"dir,omitempty"`
	Files int    `json:"files,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
	Error string `json:"error,omitempty"`
}

// StreamRange is a stream's first and last seq.
type StreamRange struct {
	First uint64 `json:"first_seq"`
	Last  uint64 `json:"last_seq"`
}

// ManifestVersion is the version of Manifest this natter writes and reads.
const ManifestVersion = 1

// BackupStore is a store that can be backed up online.
type BackupStore interface {
	store.Positions
	store.Checkpointer
}

// Checkpoint makes a consistent checkpoint of st under dir/<time> while natter serves: it
// records each projection's floor as the store's position first, so every event at or below the
// positions in the manifest is in the checkpoint (the appliers acked them after writing them,
// before the floor was read, and the checkpoint holds every write made before it).
func Checkpoint(ctx context.Context, js jetstream.JetStream, st BackupStore, ps []Projection, dir string) (Manifest, error) {
	m := Manifest{Version: ManifestVersion, CreatedAt: time.Now().UTC(), Streams: map[string]StreamRange{}}
	positions, err := RecordPositions(ctx, js, st, ps)
	if err != nil {
		return m, fmt.Errorf("checkpoint: %w", err)
	}
	m.Positions = positions
	for _, p := range ps {
		s, err := js.Stream(ctx, p.Stream)
		if err != nil {
			return m, fmt.Errorf("checkpoint: %w", err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return m, fmt.Errorf("checkpoint: %w", err)
		}
		m.Streams[p.Stream] = StreamRange{First: info.State.FirstSeq, Last: info.State.LastSeq}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return m, fmt.Errorf("checkpoint: %w", err)
	}
	m.Dir = filepath.Join(dir, m.CreatedAt.Format("20060102T150405.000000000Z"))
	if err := st.Checkpoint(ctx, m.Dir); err != nil {
		return m, fmt.Errorf("checkpoint: %w", err)
	}
	m.Files, m.Bytes, err = DirSize(m.Dir)
	if err != nil {
		return m, fmt.Errorf("checkpoint: %w", err)
	}
	return m, nil
}

// DirSize counts the regular files under dir and their bytes.
func DirSize(dir string) (files int, bytes int64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files++
		bytes += info.Size()
		return nil
	})
	return files, bytes, err
}

// BackupServer answers BackupSubject: one checkpoint at a time, under its directory.
type BackupServer struct {
	sub     *nats.Subscription
	mu      sync.Mutex // held by the request under way
	stopped bool
}

// ServeBackups answers checkpoint requests on nc until Stop.
func ServeBackups(nc *nats.Conn, js jetstream.JetStream, st BackupStore, ps []Projection, dir string, log *zap.Logger) (*BackupServer, error) {
	b := &BackupServer{}
	sub, err := nc.Subscribe(BackupSubject, func(req *nats.Msg) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.stopped {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		m, err := Checkpoint(ctx, js, st, ps, dir)
		if err != nil {
			log.Error("backup checkpoint", zap.Error(err))
			m.Error = err.Error()
		} else {
			log.Info("backup checkpoint made", zap.String("dir", m.Dir), zap.Any("positions", m.Positions), zap.Int64("bytes", m.Bytes))
		}
		data, _ := json.Marshal(m)
		if err := req.Respond(data); err != nil {
			log.Warn("backup: reply", zap.Error(err))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("backup server: %w", err)
	}
	b.sub = sub
	return b, nil
}

// Stop stops taking requests and waits for the one under way.
func (b *BackupServer) Stop(context.Context) error {
	err := b.sub.Unsubscribe()
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	if errors.Is(err, nats.ErrConnectionClosed) {
		return nil
	}
	return err
}

// RequestCheckpoint asks the running natter on nc for a checkpoint.
func RequestCheckpoint(ctx context.Context, nc *nats.Conn) (Manifest, error) {
	var m Manifest
	reply, err := nc.RequestWithContext(ctx, BackupSubject, nil)
	if errors.Is(err, nats.ErrNoResponders) {
		return m, errors.New("no natter process with an embedded store answers on this NATS (is natter run up, with --store pebble?)")
	}
	if err != nil {
		return m, fmt.Errorf("checkpoint request: %w", err)
	}
	if err := json.Unmarshal(reply.Data, &m); err != nil {
		return m, fmt.Errorf("checkpoint reply: %w", err)
	}
	if m.Error != "" {
		return m, fmt.Errorf("checkpoint: %s", m.Error)
	}
	return m, nil
}
