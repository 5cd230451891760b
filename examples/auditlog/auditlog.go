// Package auditlog is an example of the consumer a backend team adds to natter: an audit log
// that appends every message and membership change of the CHAT stream to a file, one JSON line
// each, in stream order.
//
// It shows the pattern every natter consumer follows:
//   - a durable consumer of its own on CHAT (Consumer), so it resumes where it stopped and never
//     slows the others down;
//   - at least once: a chunk's lines are on disk (fsync) before any of its events is acked, so a
//     crash loses nothing acked;
//   - idempotent: an event can come again (a crash between the fsync and the ack), so the log
//     remembers the last seq it wrote — read back from the file itself at start — and skips
//     what it already has;
//   - in order: one worker, and a transient failure retried in place, so a later event never
//     overtakes an earlier one.
package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/streams"
)

// Line is one entry of the log.
type Line struct {
	Seq            uint64                `json:"seq"`
	ConversationID string                `json:"conversation_id"`
	Kind           string                `json:"kind"`
	MessageID      string                `json:"message_id"`
	SenderID       string                `json:"sender_id"`
	Text           string                `json:"text,omitempty"`
	Member         *streams.MemberChange `json:"member,omitempty"`
	SentAt         int64                 `json:"sent_at"`
}

// Consumer is the durable consumer's configuration: every CHAT event from the start, explicit
// acks. Create it once (CreateOrUpdateConsumer keeps its position when it exists).
func Consumer(name string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "example: appends messages and membership changes to an audit log file",
		FilterSubject: streams.ChatAll,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// Log is an append-only audit log file.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	last uint64 // the seq of the last line in the file
}

// Open opens (or creates) the log at path and reads the seq of its last line. A last line cut
// short by a crash is dropped: its event was never acked and comes again.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	last, size, err := lastSeq(f)
	if err == nil {
		err = f.Truncate(size)
	}
	if err == nil {
		_, err = f.Seek(size, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	return &Log{f: f, w: bufio.NewWriter(f), last: last}, nil
}

// lastSeq reads the file: the seq of its last whole line, and the size up to the end of it.
func lastSeq(f *os.File) (last uint64, size int64, err error) {
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return last, size, nil // a line without its newline was cut short
		}
		if err != nil {
			return 0, 0, err
		}
		var l Line
		if err := json.Unmarshal(bytes.TrimSpace(line), &l); err != nil {
			return 0, 0, fmt.Errorf("line after seq %d: %w", last, err)
		}
		last, size = l.Seq, size+int64(len(line))
	}
}

// Last is the seq of the last event in the log.
func (l *Log) Last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Handle is the consumer kit's handler: it buffers the event's line unless the log has it.
func (l *Log) Handle(_ context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(fmt.Errorf("metadata: %w", err))
	}
	seq := meta.Sequence.Stream
	_, kind, ok := streams.ParseChatSubject(msg.Subject())
	if !ok || (kind != streams.KindMsg && kind != streams.KindMember) {
		return nil // receipts and the like are not audited
	}
	ev, err := streams.DecodeChatEvent(msg.Data())
	if err != nil {
		return consumer.Permanent(err) // never decodable: logged by the kit, and passed
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq <= l.last {
		return nil // written before a crash, acked only now
	}
	b, err := json.Marshal(Line{Seq: seq, ConversationID: ev.ConversationID, Kind: ev.Kind, MessageID: ev.MessageID,
		SenderID: ev.SenderID, Text: ev.Text, Member: ev.Member, SentAt: ev.SentAt})
	if err != nil {
		return consumer.Permanent(err)
	}
	if _, err := l.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	l.last = seq
	return nil
}

// Sync is the consumer kit's flush hook: the chunk's lines reach the disk before its acks.
func (l *Log) Sync(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.w.Flush(), l.f.Close())
}

// Run consumes CHAT into the log through the durable consumer name until ctx ends, then drains.
func Run(ctx context.Context, js jetstream.JetStream, name string, log *Log, zl *zap.Logger) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, streams.ChatStream, Consumer(name))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", name, err)
	}
	runner, err := consumer.Start(js, cons, consumer.Config{Name: name, Workers: 1, RetryInPlace: true},
		log.Handle, consumer.Hooks{Flush: log.Sync}, zl, nil)
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return runner.Stop(stop)
}
