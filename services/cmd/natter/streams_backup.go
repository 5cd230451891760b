package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream snapshots through JetStream's own snapshot and restore API ($JS.API.STREAM.SNAPSHOT and
// .RESTORE, what `nats stream backup` and `nats stream restore` use): the server writes a
// consistent archive of the stream (messages and consumers) in chunks, each acknowledged for
// flow control; a restore sends the chunks back and the server recreates the stream as it was.

// streamSnapshot is one stream's snapshot in a backup: <name>.json (this) and <name>.snap.
type streamSnapshot struct {
	Stream string          `json:"stream"`
	Config json.RawMessage `json:"config"`
	State  json.RawMessage `json:"state"`
	First  uint64          `json:"first_seq"`
	Last   uint64          `json:"last_seq"`
	Msgs   uint64          `json:"messages"`
	Bytes  int64           `json:"snapshot_bytes"`
}

// snapshotStreams writes a snapshot of every stream (the KV buckets' included) into dir.
func snapshotStreams(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, dir string) ([]streamSnapshot, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var names []string
	lister := js.StreamNames(ctx)
	for n := range lister.Name() {
		names = append(names, n)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	sort.Strings(names)
	var out []streamSnapshot
	for _, name := range names {
		s, err := snapshotStream(ctx, nc, name, dir)
		if err != nil {
			return out, fmt.Errorf("snapshot %s: %w", name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func snapshotStream(ctx context.Context, nc *nats.Conn, name, dir string) (streamSnapshot, error) {
	s := streamSnapshot{Stream: name}
	f, err := os.Create(filepath.Join(dir, name+".snap"))
	if err != nil {
		return s, err
	}
	defer f.Close()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return s, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, _ := json.Marshal(map[string]any{"deliver_subject": inbox, "chunk_size": 256 << 10})
	reply, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.SNAPSHOT."+name, req)
	if err != nil {
		return s, err
	}
	var resp struct {
		Config json.RawMessage `json:"config"`
		State  json.RawMessage `json:"state"`
		Error  *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return s, err
	}
	if resp.Error != nil {
		return s, errors.New(resp.Error.Description)
	}
	s.Config, s.State = resp.Config, resp.State
	var state struct {
		Msgs  uint64 `json:"messages"`
		First uint64 `json:"first_seq"`
		Last  uint64 `json:"last_seq"`
	}
	_ = json.Unmarshal(resp.State, &state)
	s.Msgs, s.First, s.Last = state.Msgs, state.First, state.Last
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return s, err
		}
		if len(msg.Data) == 0 { // the end: no status, or 204, or the error's status
			if st := msg.Header.Get("Status"); st != "" && st != "204" {
				return s, fmt.Errorf("server ended the snapshot: %s %s", st, msg.Header.Get("Description"))
			}
			break // end of the snapshot
		}
		n, err := f.Write(msg.Data)
		if err != nil {
			return s, err
		}
		s.Bytes += int64(n)
		if msg.Reply != "" {
			if err := msg.Respond(nil); err != nil {
				return s, err
			}
		}
	}
	if err := f.Sync(); err != nil {
		return s, err
	}
	return s, writeJSON(filepath.Join(dir, name+".json"), s)
}

// restoreStreams restores every stream snapshot of dir into the NATS of natsURL (or the embedded
// one of dataDir). A stream that exists there already is refused: delete it first.
func restoreStreams(ctx context.Context, natsURL, dataDir, dir string, out io.Writer) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("streams: %w (was the backup made with --streams?)", err)
	}
	if natsURL == "" {
		if err := os.MkdirAll(filepath.Join(dataDir, "nats"), 0o755); err != nil {
			return err
		}
	}
	bs, err := openBus(natsURL, dataDir, "natter restore")
	if err != nil {
		return err
	}
	defer bs.close()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var s streamSnapshot
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err != nil {
			return fmt.Errorf("streams: %s: %w", e.Name(), err)
		}
		if _, err := bs.js.Stream(ctx, s.Stream); err == nil {
			return fmt.Errorf("stream %s exists already: delete it (nats stream rm %s) or restore into an empty NATS", s.Stream, s.Stream)
		}
		if err := restoreStream(ctx, bs.nc, s, filepath.Join(dir, s.Stream+".snap")); err != nil {
			return fmt.Errorf("restore stream %s: %w", s.Stream, err)
		}
		fmt.Fprintf(out, "  %-10s stream restored: %d messages (seq %d..%d)\n", s.Stream, s.Msgs, s.First, s.Last)
	}
	return nil
}

func restoreStream(ctx context.Context, nc *nats.Conn, s streamSnapshot, snap string) error {
	req, _ := json.Marshal(map[string]json.RawMessage{"config": s.Config, "state": s.State})
	reply, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.RESTORE."+s.Stream, req)
	if err != nil {
		return err
	}
	var resp struct {
		DeliverSubject string `json:"deliver_subject"`
		Error          *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return errors.New(resp.Error.Description)
	}
	f, err := os.Open(snap)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 128<<10)
	for {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := nc.RequestWithContext(cctx, resp.DeliverSubject, buf[:n])
			cancel()
			if err != nil {
				return fmt.Errorf("send chunk: %w", err)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	done, err := nc.RequestWithContext(cctx, resp.DeliverSubject, nil)
	if err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	var final struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(done.Data, &final); err != nil {
		return err
	}
	if final.Error != nil {
		return errors.New(final.Error.Description)
	}
	return nil
}
