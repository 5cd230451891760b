package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/sdk/go/protocol/flatjson"
	"github.com/natter-chat/natter/streams"
)

// publisher sends the gateway's messages to the CHAT stream asynchronously and acks each one to
// its client when JetStream's acknowledgement arrives (invariant 1: an ack means the stream has
// it). A socket's read loop publishes and goes on reading; it does not wait one round trip per
// send.
//
// It speaks JetStream's publish protocol itself rather than through nats.go's asynchronous
// publisher, which costs a timer, a random reply token, a future and a JSON decode per message:
// a publish is a core NATS message with a reply subject in the publisher's own inbox, numbered;
// the stream answers there with its PubAck ({"stream":..,"seq":..}, with "duplicate":true for a
// retry inside its duplicate window, or {"error":..}), and the server with a 503 status when no
// stream takes the subject. One sweep, not a timer each, fails what is not answered within
// Config.PublishTimeout.
//
// What is in flight is bounded twice: per socket (Config.SocketPublishWindow) and per gateway
// (Config.PublishWindow). A read loop that finds either window full waits — it stops reading its
// socket, so the backpressure reaches the client through TCP — while the hub and every other
// socket go on. The gateway-wide window also bounds what the gateway can queue in the NATS server
// ahead of the consumers' own requests on the same server. And a send waits, before either
// window, while delivery to this gateway is too far behind (Gateway.awaitDelivery).
//
// Order: one socket's sends are published in the order they were read, on one connection, so the
// stream assigns their seqs in that order, and their acks come back in that order too.
type publisher struct {
	g      *Gateway
	window chan struct{} // gateway-wide publishes in flight
	reply  string        // a publish's reply subject: reply + its token (base 32)
	sub    *nats.Subscription

	mu       sync.Mutex
	next     uint64 // the token of the next publish
	oldest   uint64 // no publish with a lower token is in flight: where the timeout sweep starts
	inflight map[uint64]*inflightSend
	empty    chan struct{} // closed when inflight is empty and drain waits for that; else nil

	last atomic.Uint64 // the highest seq JetStream acknowledged to this gateway

	// dups holds acks JetStream marked Duplicate: the original's message id and time have to be
	// read back from the stream, which the reply handler must not wait for. duplicateAnswerers
	// goroutines answer them, each reading one original at a time; when they are behind, the
	// client is told to retry.
	dups chan duplicateSend
}

type inflightSend struct {
	s           *session
	ref         string
	clientMsgID string
	conv        string
	messageID   string
	sentAt      int64
	start       time.Time
}

type duplicateSend struct {
	*inflightSend
	seq uint64
}

var (
	errPublishTimeout = errors.New("JetStream did not acknowledge the publish in time")
	errNoStream       = errors.New("no stream took the publish (JetStream unavailable)")
	errPublisherDone  = errors.New("the gateway stopped before JetStream acknowledged the publish")
)

func newPublisher(g *Gateway) (*publisher, error) {
	p := &publisher{g: g, window: make(chan struct{}, g.cfg.PublishWindow), reply: g.deps.NC.NewInbox() + ".",
		inflight: map[uint64]*inflightSend{}, dups: make(chan duplicateSend, 256)}
	sub, err := g.deps.NC.Subscribe(p.reply+"*", p.onReply)
	if err != nil {
		return nil, err
	}
	// Never the limit: the window is (one reply per publish in flight).
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	p.sub = sub
	return p, nil
}

// publish sends msg for s, waiting for room in both windows (or the end of the session). The
// answer — ack, duplicate ack or unavailable — comes later, from onReply or the timeout sweep.
func (p *publisher) publish(s *session, f *inflightSend, msg *nats.Msg) {
	p.g.awaitDelivery(s.ctx)
	select {
	case s.window <- struct{}{}:
	case <-s.kill:
		return
	}
	select {
	case p.window <- struct{}{}:
	case <-s.kill:
		<-s.window
		return
	}
	f.s = s
	p.mu.Lock()
	token := p.next
	p.next++
	f.start = time.Now() // under mu: tokens and starts rise together (expire)
	p.inflight[token] = f
	p.mu.Unlock()
	var reply [96]byte // on the stack: the subject costs one allocation, the string
	msg.Reply = string(strconv.AppendUint(append(reply[:0], p.reply...), token, 32))
	if err := p.g.deps.NC.PublishMsg(msg); err != nil {
		if f := p.take(token); f != nil {
			s.unavailable(f.ref, "publish", err)
		}
	}
}

// take removes the publish of token and frees its window slots; nil if it was answered already.
func (p *publisher) take(token uint64) *inflightSend {
	p.mu.Lock()
	f := p.inflight[token]
	delete(p.inflight, token)
	if len(p.inflight) == 0 && p.empty != nil {
		close(p.empty)
		p.empty = nil
	}
	p.mu.Unlock()
	if f != nil {
		<-f.s.window
		<-p.window
	}
	return f
}

// onReply runs on the reply subscription's goroutine for every answer to a publish: it must not
// block.
func (p *publisher) onReply(m *nats.Msg) {
	token, err := strconv.ParseUint(strings.TrimPrefix(m.Subject, p.reply), 32, 64)
	if err != nil {
		return
	}
	seq, duplicate, err := parsePubAck(m)
	if err == nil {
		// Before take frees the publish's windows: a send they let through waited for delivery
		// against a last that included this ack, or it could run ahead of delivery by more
		// than MaxDeliveryLag and the windows.
		raise(&p.last, seq)
	}
	f := p.take(token)
	if f == nil {
		return // timed out already
	}
	p.g.met.publish.Observe(time.Since(f.start).Seconds())
	if err != nil {
		f.s.unavailable(f.ref, "publish", err)
		return
	}
	if duplicate {
		select {
		case p.dups <- duplicateSend{f, seq}:
		default:
			f.s.unavailable(f.ref, "answer a duplicate", errDuplicatesBehind)
		}
		return
	}
	p.g.met.sends.WithLabelValues("ok").Inc()
	f.s.sendAck(protocol.Ack{Type: protocol.TypeAck, Ref: f.ref, ClientMsgID: f.clientMsgID, ConversationID: f.conv,
		MessageID: f.messageID, Seq: seq, SentAt: f.sentAt})
}

// parsePubAck reads JetStream's answer to a publish: the seq the stream stored it at, and
// whether it was a duplicate of one stored before. A 503 status (no stream takes the subject) or
// an error from the stream is an error.
func parsePubAck(m *nats.Msg) (seq uint64, duplicate bool, err error) {
	if len(m.Data) == 0 {
		if m.Header.Get("Status") == "503" {
			return 0, false, errNoStream
		}
		return 0, false, fmt.Errorf("empty answer to a publish (status %q)", m.Header.Get("Status"))
	}
	// The usual answers, without reflection: {"stream":"CHAT","seq":5} and the same with
	// ,"duplicate":true. Anything else goes through encoding/json.
	r := flatjson.Reader{B: m.Data}
	var stream string
	if r.Lit(`{"stream":`) && r.Str(&stream) && r.Lit(`,"seq":`) && r.Uint(&seq) {
		duplicate = r.Lit(`,"duplicate":true`)
		if r.Lit(`}`) && len(r.B) == 0 && seq > 0 {
			return seq, duplicate, nil
		}
	}
	var ack struct {
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
		Error     *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &ack); err != nil {
		return 0, false, fmt.Errorf("answer to a publish: %w", err)
	}
	if ack.Error != nil {
		return 0, false, fmt.Errorf("JetStream refused the publish: %s (code %d, error code %d)", ack.Error.Description, ack.Error.Code, ack.Error.ErrCode)
	}
	if ack.Seq == 0 {
		return 0, false, fmt.Errorf("answer to a publish without a seq: %.200s", m.Data)
	}
	return ack.Seq, ack.Duplicate, nil
}

// raise sets v to seq if that is higher.
func raise(v *atomic.Uint64, seq uint64) {
	for last := v.Load(); seq > last; last = v.Load() {
		if v.CompareAndSwap(last, seq) {
			return
		}
	}
}

// expireLate fails, as unavailable, every publish not answered within Config.PublishTimeout, once
// a tenth of it, until the gateway stops: the message may or may not be in the stream, and the
// client retries it with the same client_msg_id.
func (p *publisher) expireLate() {
	defer p.g.loops.Done()
	tick := time.NewTicker(max(p.g.cfg.PublishTimeout/10, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-p.g.stopping:
			return
		case now := <-tick.C:
			p.fail(now.Add(-p.g.cfg.PublishTimeout), errPublishTimeout)
		}
	}
}

// fail answers every publish in flight that started before cutoff with err. Tokens rise with
// start times, so the sweep stops at the first one in flight that is younger.
func (p *publisher) fail(cutoff time.Time, err error) {
	p.mu.Lock()
	var late []uint64
	for ; p.oldest < p.next; p.oldest++ {
		if f, ok := p.inflight[p.oldest]; ok {
			if !f.start.Before(cutoff) {
				break
			}
			late = append(late, p.oldest)
		}
	}
	p.mu.Unlock()
	for _, token := range late {
		if f := p.take(token); f != nil {
			p.g.met.publish.Observe(time.Since(f.start).Seconds())
			f.s.unavailable(f.ref, "publish", err)
		}
	}
}

// duplicateAnswerers read originals back at once: retries come in crowds (every device that
// reconnects after a gateway went away resends what was not acknowledged), and each answer
// waits for a round trip to JetStream; one reader left most of such a crowd told to retry again.
const duplicateAnswerers = 8

// answerDuplicates answers the retries JetStream recognised with the original's ack, until the
// gateway stops.
func (p *publisher) answerDuplicates() {
	defer p.g.loops.Done()
	for {
		select {
		case <-p.g.stopping:
			return
		case d := <-p.dups:
			p.answerDuplicate(d)
		}
	}
}

func (p *publisher) answerDuplicate(d duplicateSend) {
	s := d.s
	ctx, cancel := context.WithTimeout(s.ctx, p.g.cfg.PublishTimeout)
	defer cancel()
	raw, err := p.g.chat.GetMsg(ctx, d.seq)
	if err != nil {
		s.unavailable(d.ref, "read the original of a duplicate", err)
		return
	}
	orig, err := streams.DecodeChatEvent(raw.Data)
	if err != nil {
		s.unavailable(d.ref, "decode the original of a duplicate", err)
		return
	}
	s.ackDuplicate(d.ref, orig.ConversationID, orig.MessageID, d.seq, orig.SentAt, d.clientMsgID)
}

// drain waits (bounded by ctx) for the publishes in flight to be answered, then fails the rest
// and stops taking answers.
func (p *publisher) drain(ctx context.Context) {
	p.mu.Lock()
	wait := make(chan struct{})
	if len(p.inflight) == 0 {
		close(wait)
	} else {
		p.empty = wait
	}
	p.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
	}
	p.fail(time.Now().Add(time.Hour), errPublisherDone)
	_ = p.sub.Unsubscribe()
}
