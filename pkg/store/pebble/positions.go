package pebble

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/cockroachdb/pebble/v2"

	"github.com/natter-chat/natter/pkg/store"
)

// tagPos keys the stream positions: pos/<stream> -> 8-byte big-endian seq. It sorts before every
// record tag but "mem/", "mid/" and "msg/"; Empty skips it by key rather than by order.
const tagPos = "pos/"

var (
	_ store.Positions    = (*Store)(nil)
	_ store.Checkpointer = (*Store)(nil)
)

// Position implements store.Positions.
func (s *Store) Position(ctx context.Context, stream string) (uint64, bool, error) {
	if err := s.enter(ctx); err != nil {
		return 0, false, fmt.Errorf("pebble: position of %s: %w", stream, err)
	}
	defer s.mu.RUnlock()
	v, ok, err := s.get(key(tagPos, stream))
	if err != nil || !ok {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("pebble: position of %s: %w", stream, errCorrupt)
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// RecordPosition implements store.Positions; it is synced, so a recorded position survives a
// crash of the machine together with the writes it covers (synced before it).
func (s *Store) RecordPosition(ctx context.Context, stream string, seq uint64) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: record position of %s: %w", stream, err)
	}
	defer s.mu.RUnlock()
	k := key(tagPos, stream)
	defer s.lock(k)()
	v, ok, err := s.get(k)
	if err == nil && ok && len(v) == 8 && binary.BigEndian.Uint64(v) >= seq {
		return nil
	}
	if err == nil {
		err = s.db.Set(k, binary.BigEndian.AppendUint64(nil, seq), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("pebble: record position of %s: %w", stream, err)
	}
	return nil
}

// Empty implements store.Positions.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	if err := s.enter(ctx); err != nil {
		return false, fmt.Errorf("pebble: empty: %w", err)
	}
	defer s.mu.RUnlock()
	it, err := s.db.NewIter(nil)
	if err != nil {
		return false, fmt.Errorf("pebble: empty: %w", err)
	}
	empty := true
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Key()) >= len(tagPos) && string(it.Key()[:len(tagPos)]) == tagPos {
			continue
		}
		empty = false
		break
	}
	if err := it.Close(); err != nil {
		return false, fmt.Errorf("pebble: empty: %w", err)
	}
	return empty, nil
}

// Checkpoint implements store.Checkpointer with a Pebble checkpoint: dir must not exist; on the
// same file system its files are hard links, so it is fast and small until the store compacts.
// The WAL is flushed first, so the checkpoint holds every write that returned before the call.
func (s *Store) Checkpoint(ctx context.Context, dir string) error {
	if err := s.enter(ctx); err != nil {
		return fmt.Errorf("pebble: checkpoint: %w", err)
	}
	defer s.mu.RUnlock()
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("pebble: checkpoint: %s already exists", dir)
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("pebble: checkpoint to %s: %w", dir, err)
	}
	return nil
}
