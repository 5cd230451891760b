package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/streams"
)

// pushAckWait bounds how long a chunk waits for JetStream to store its push requests.
const pushAckWait = 10 * time.Second

// pending are the asynchronous publishes of the chunk being handled: push requests (which must
// be stored before the events that asked for them are acknowledged) and ledger entries (best
// effort: a lost "skipped: online" entry only makes `natter push why` less helpful).
type pending struct {
	mu       sync.Mutex
	requests []jetstream.PubAckFuture
	ledger   []jetstream.PubAckFuture
}

// requestPushes handles the push side of a text message, given its receivers and whether each
// has a device connected (online[i], from the same reading of the routes that routed it): one
// push request on push.<user> for each receiver (not the sender) with no connected device, and
// for those who are online a "skipped: online" ledger entry per connected device
// (Config.PushOnlineLedger). Requests carry Nats-Msg-Id <message>:<user>, so a redelivered event
// does not push twice.
func (part *partition) requestPushes(seq uint64, ev streams.ChatEvent, receivers []string, online []bool) error {
	f := part.f
	now := time.Now().UnixMilli()
	for i, user := range receivers {
		if user == ev.SenderID {
			continue
		}
		if !online[i] {
			data, err := streams.NewPushRequest(user, seq, ev).Encode()
			if err != nil {
				return consumer.Permanent(fmt.Errorf("encode push request: %w", err))
			}
			fut, err := f.deps.JS.PublishAsync(streams.PushSubject(user), data,
				jetstream.WithMsgID(streams.PushMsgID(ev.MessageID, user)))
			if err != nil {
				return fmt.Errorf("push request for %s: %w", user, err)
			}
			part.pending.mu.Lock()
			part.pending.requests = append(part.pending.requests, fut)
			part.pending.mu.Unlock()
			continue
		}
		if !f.cfg.PushOnlineLedger {
			continue
		}
		for _, d := range f.routes.Devices(user) {
			data, err := json.Marshal(streams.PushLedgerEntry{
				UserID: user, MessageID: ev.MessageID, ConversationID: ev.ConversationID, DeviceID: d.DeviceID,
				Outcome: streams.PushSkipped, Reason: streams.PushReasonOnline, Detail: "connected to gateway " + d.Route.Gateway, At: now,
			})
			if err != nil {
				return consumer.Permanent(fmt.Errorf("encode ledger entry: %w", err))
			}
			// A KV put is a publish on $KV.<bucket>.<key>; asynchronous, it costs fanout no round trip.
			fut, err := f.deps.JS.PublishAsync("$KV."+streams.PushLedgerBucket+"."+streams.PushLedgerKey(user, ev.MessageID, d.DeviceID), data)
			if err != nil {
				f.log.Warn("push ledger entry not written", zap.String("user", user), zap.String("message", ev.MessageID), zap.Error(err))
				continue
			}
			part.pending.mu.Lock()
			part.pending.ledger = append(part.pending.ledger, fut)
			part.pending.mu.Unlock()
		}
	}
	return nil
}

// flush runs before a chunk is acknowledged: its push requests must be stored, and its
// deliveries over NATS handed to the server.
func (part *partition) flush(ctx context.Context) error {
	f := part.f
	part.pending.mu.Lock()
	requests, ledger := part.pending.requests, part.pending.ledger
	part.pending.requests, part.pending.ledger = nil, nil
	part.pending.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, pushAckWait)
	defer cancel()
	var failed error
	for _, fut := range requests {
		if err := awaitAck(ctx, fut); err != nil && failed == nil {
			failed = fmt.Errorf("store push request: %w", err)
		}
	}
	lost := 0
	var lastErr error
	for _, fut := range ledger {
		if err := awaitAck(ctx, fut); err != nil {
			lost, lastErr = lost+1, err
		}
	}
	if lost > 0 {
		f.log.Warn("push ledger entries not written", zap.Int("entries", lost), zap.Error(lastErr))
	}
	if failed != nil {
		return failed
	}
	if !part.overNATS.Swap(false) {
		return nil
	}
	return f.deps.NC.Flush()
}

func awaitAck(ctx context.Context, fut jetstream.PubAckFuture) error {
	select {
	case <-fut.Ok():
		return nil
	case err := <-fut.Err():
		if err == nil {
			err = errors.New("publish failed")
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
