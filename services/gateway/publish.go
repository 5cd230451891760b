package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// publisher sends the gateway's messages to the CHAT stream asynchronously and acks each one to
// its client when JetStream's acknowledgement arrives (invariant 1: an ack means the stream has
// it). A socket's read loop publishes and goes on reading; it does not wait one round trip per
// send.
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
	js     jetstream.JetStream // its own context: the ack and error callbacks below are its own
	window chan struct{}       // gateway-wide publishes in flight

	mu       sync.Mutex
	inflight map[*nats.Msg]*inflightSend

	last atomic.Uint64 // the highest seq JetStream acknowledged to this gateway

	// dups holds acks JetStream marked Duplicate: the original's message id and time have to be
	// read back from the stream, which the ack callback must not wait for. One goroutine answers
	// them (a retry inside the duplicate window is rare); when it is behind, the client is told
	// to retry.
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

func newPublisher(g *Gateway) (*publisher, error) {
	p := &publisher{g: g, window: make(chan struct{}, g.cfg.PublishWindow), inflight: map[*nats.Msg]*inflightSend{},
		dups: make(chan duplicateSend, 256)}
	js, err := jetstream.New(g.deps.NC,
		jetstream.WithPublishAsyncAckHandler(p.onAck),
		jetstream.WithPublishAsyncErrHandler(p.onErr),
		// Never the limit: our windows are (nats.go frees its slot before our callback frees ours).
		jetstream.WithPublishAsyncMaxPending(2*g.cfg.PublishWindow+1),
		jetstream.WithPublishAsyncTimeout(g.cfg.PublishTimeout),
	)
	if err != nil {
		return nil, err
	}
	p.js = js
	return p, nil
}

// publish sends msg for s, waiting for room in both windows (or the end of the session). The
// answer — ack, duplicate ack or unavailable — comes later, from onAck or onErr.
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
	f.s, f.start = s, time.Now()
	p.mu.Lock()
	p.inflight[msg] = f
	p.mu.Unlock()
	if _, err := p.js.PublishMsgAsync(msg); err != nil {
		if f := p.take(msg); f != nil {
			s.unavailable(f.ref, "publish", err)
		}
	}
}

// take removes msg's entry and frees its window slots; nil if it was answered already.
func (p *publisher) take(msg *nats.Msg) *inflightSend {
	p.mu.Lock()
	f := p.inflight[msg]
	delete(p.inflight, msg)
	p.mu.Unlock()
	if f != nil {
		<-f.s.window
		<-p.window
	}
	return f
}

// onAck runs on the publish context's reply goroutine for every acknowledged publish: it must
// not block.
func (p *publisher) onAck(_ jetstream.JetStream, msg *nats.Msg, pa *jetstream.PubAck) {
	f := p.take(msg)
	if f == nil {
		return
	}
	p.g.met.publish.Observe(time.Since(f.start).Seconds())
	raise(&p.last, pa.Sequence)
	if pa.Duplicate {
		select {
		case p.dups <- duplicateSend{f, pa.Sequence}:
		default:
			f.s.unavailable(f.ref, "answer a duplicate", errDuplicatesBehind)
		}
		return
	}
	p.g.met.sends.WithLabelValues("ok").Inc()
	f.s.sendAck(protocol.Ack{Type: protocol.TypeAck, Ref: f.ref, ClientMsgID: f.clientMsgID, ConversationID: f.conv,
		MessageID: f.messageID, Seq: pa.Sequence, SentAt: f.sentAt})
}

// raise sets v to seq if that is higher.
func raise(v *atomic.Uint64, seq uint64) {
	for last := v.Load(); seq > last; last = v.Load() {
		if v.CompareAndSwap(last, seq) {
			return
		}
	}
}

// onErr runs for a publish that failed or timed out (Config.PublishTimeout): the message may or
// may not be in the stream, and the client retries it with the same client_msg_id.
func (p *publisher) onErr(_ jetstream.JetStream, msg *nats.Msg, err error) {
	if f := p.take(msg); f != nil {
		p.g.met.publish.Observe(time.Since(f.start).Seconds())
		f.s.unavailable(f.ref, "publish", err)
	}
}

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

// drain waits (bounded by ctx) for the publishes in flight to be answered, then fails the rest.
func (p *publisher) drain(ctx context.Context) {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
	}
	p.js.CleanupPublisher()
}
