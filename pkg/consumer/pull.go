package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// puller sends a consumer's pull requests itself and receives everything the server sends for
// them on one subscription that lives as long as the Runner. nats.go v1.55's Fetch subscribes
// anew for each pull and gives up on it a second after its wait even when what the server sent
// is already in its buffer (a process starved that long, say), dropping it; an ack-all consumer
// then has to be reset (Runner.inSequence), and an explicit-ack one waits out its ack wait for
// the dropped messages. Here a pull that this side stopped waiting for drops nothing: what the
// server still sends for it arrives on the same subscription and the next pull hands it on.
type puller struct {
	nc   *nats.Conn
	next string // the consumer's "next messages" API subject
	// inbox is the subscription's prefix: pull k asks for its replies on inbox + k, so that a
	// pull's status is told apart from an earlier one's.
	inbox   string
	sub     *nats.Subscription
	arrived chan *nats.Msg // everything the server sends on sub, in order
	group   string
	pin     string // the pin id the server gave this puller in its priority group
	sent    uint64 // pulls sent
}

// pullMargin is how long past a pull's own wait this side keeps waiting for the server to end
// it (with its last message or a status) before pulling again: only a request lost on the way
// (a reconnect) takes it.
var pullMargin = 2 * time.Second

// newPuller subscribes for cons's deliveries. maxPending bounds the messages the server can
// have sent and this side not yet handed on (the consumer's MaxAckPending): the subscription's
// channel holds that many and more, so nats.go never drops one for a full channel.
func newPuller(js jetstream.JetStream, cons jetstream.Consumer, group string, maxPending int) (*puller, error) {
	info := cons.CachedInfo()
	p := &puller{nc: js.Conn(), next: apiPrefix(js.Options()) + "CONSUMER.MSG.NEXT." + info.Stream + "." + info.Name,
		group: group}
	p.inbox = p.nc.NewInbox() + "."
	if maxPending <= 0 {
		maxPending = 1 << 16
	}
	// Pulls that ended on this side before the server ended them can each still bring a status.
	p.arrived = make(chan *nats.Msg, maxPending+1024)
	sub, err := p.nc.ChanSubscribe(p.inbox+"*", p.arrived)
	if err != nil {
		return nil, fmt.Errorf("subscribe for the pulls of %s: %w", info.Name, err)
	}
	p.sub = sub
	return p, nil
}

// apiPrefix is the JetStream API subject prefix of a JetStream context with these options.
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	default:
		return "$JS.API."
	}
}

// pullRequest is the body of a pull request (JetStream's JSApiConsumerGetNextRequest).
type pullRequest struct {
	Batch   int           `json:"batch"`
	Expires time.Duration `json:"expires,omitempty"`
	NoWait  bool          `json:"no_wait,omitempty"`
	Group   string        `json:"group,omitempty"`
	PinID   string        `json:"id,omitempty"`
}

// send asks for up to batch messages, waiting up to wait for them (0: only what is there now),
// and returns the subject the pull's status will come on.
func (p *puller) send(batch int, wait time.Duration) (string, error) {
	p.sent++
	reply := p.inbox + strconv.FormatUint(p.sent, 10)
	body, err := json.Marshal(pullRequest{Batch: batch, Expires: wait, NoWait: wait == 0, Group: p.group, PinID: p.pin})
	if err != nil {
		return "", err
	}
	if err := p.nc.PublishRequest(p.next, reply, body); err != nil {
		return "", fmt.Errorf("pull: %w", err)
	}
	return reply, nil
}

// close ends the subscription: anything the server still sends is left for the ack wait, or
// for the next puller's reset.
func (p *puller) close() { _ = p.sub.Unsubscribe() }

// errPinMoved ends a pull whose pin id the server no longer knows: another instance holds the
// pin now (or this one unpinned itself to take a dead owner's partition over).
var errPinMoved = errors.New("the priority group's pin moved")

// status reads a message the server sends instead of messages: ended reports whether it ends
// the pull it answers, err why it ended other than with the messages there were.
func (p *puller) status(m *nats.Msg) (ended bool, err error) {
	code, desc := m.Header.Get("Status"), m.Header.Get("Description")
	switch code {
	case "100": // a heartbeat or flow control: this puller asks for neither
		return false, nil
	case "404", "408": // no messages, or the pull's wait passed
		return true, nil
	case "409":
		if desc == "Batch Completed" {
			return true, nil
		}
	case "423":
		p.pin = ""
		return true, errPinMoved
	case "503":
		return true, fmt.Errorf("pull: %w", nats.ErrNoResponders)
	}
	return true, fmt.Errorf("pull: status %s %s", code, desc)
}

// isStatus reports whether m is a status the server sends on a pull's reply subject.
func isStatus(m *nats.Msg) bool { return len(m.Data) == 0 && m.Header.Get("Status") != "" }

// pulledMsg is a message this package pulled: a jetstream.Msg whose metadata is read once.
type pulledMsg struct {
	m       *nats.Msg
	nc      *nats.Conn
	meta    *jetstream.MsgMetadata
	metaErr error
	acked   atomic.Bool
}

var _ jetstream.Msg = (*pulledMsg)(nil)

func newPulledMsg(nc *nats.Conn, m *nats.Msg) *pulledMsg {
	pm := &pulledMsg{m: m, nc: nc}
	pm.meta, pm.metaErr = parseMetadata(m.Reply)
	return pm
}

func (pm *pulledMsg) Metadata() (*jetstream.MsgMetadata, error) { return pm.meta, pm.metaErr }
func (pm *pulledMsg) Data() []byte                              { return pm.m.Data }
func (pm *pulledMsg) Headers() nats.Header                      { return pm.m.Header }
func (pm *pulledMsg) Subject() string                           { return pm.m.Subject }
func (pm *pulledMsg) Reply() string                             { return pm.m.Reply }

// The acknowledgements are JetStream's, as nats.go sends them: each but "in progress" settles
// the message, and a second one is refused.
var (
	ackAck        = []byte("+ACK")
	ackNak        = []byte("-NAK")
	ackInProgress = []byte("+WPI")
	ackTerm       = []byte("+TERM")
)

func (pm *pulledMsg) Ack() error  { return pm.settle(ackAck) }
func (pm *pulledMsg) Nak() error  { return pm.settle(ackNak) }
func (pm *pulledMsg) Term() error { return pm.settle(ackTerm) }
func (pm *pulledMsg) InProgress() error {
	if pm.acked.Load() {
		return jetstream.ErrMsgAlreadyAckd
	}
	return pm.publish(ackInProgress)
}

func (pm *pulledMsg) NakWithDelay(delay time.Duration) error {
	return pm.settle(fmt.Appendf(nil, `-NAK {"delay": %d}`, delay.Nanoseconds()))
}

func (pm *pulledMsg) TermWithReason(reason string) error {
	return pm.settle(fmt.Appendf(nil, "+TERM %s", reason))
}

// DoubleAck acks and waits for the server to confirm it.
func (pm *pulledMsg) DoubleAck(ctx context.Context) error {
	return pm.settleBy(func() error {
		_, err := pm.nc.RequestWithContext(ctx, pm.m.Reply, ackAck)
		return err
	})
}

func (pm *pulledMsg) settle(body []byte) error {
	return pm.settleBy(func() error { return pm.publish(body) })
}

// settleBy sends an acknowledgement that settles the message, unless one was sent already.
func (pm *pulledMsg) settleBy(send func() error) error {
	if pm.m.Reply == "" {
		return jetstream.ErrMsgNoReply
	}
	if !pm.acked.CompareAndSwap(false, true) {
		return jetstream.ErrMsgAlreadyAckd
	}
	if err := send(); err != nil {
		pm.acked.Store(false)
		return err
	}
	return nil
}

func (pm *pulledMsg) publish(body []byte) error {
	if pm.m.Reply == "" {
		return jetstream.ErrMsgNoReply
	}
	return pm.nc.Publish(pm.m.Reply, body)
}

// parseMetadata reads a delivery's metadata from its reply subject, in either of JetStream's
// forms: $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>,
// or the same with <domain>.<account hash> after $JS.ACK (and a random token at the end).
func parseMetadata(reply string) (*jetstream.MsgMetadata, error) {
	bad := func() (*jetstream.MsgMetadata, error) {
		return nil, fmt.Errorf("%w: reply subject %q", jetstream.ErrNotJSMessage, reply)
	}
	if !strings.HasPrefix(reply, "$JS.ACK.") {
		return bad()
	}
	var t [12]string
	n := 0
	for rest := reply; n < len(t); n++ {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			t[n] = rest
			n++
			break
		}
		t[n], rest = rest[:i], rest[i+1:]
	}
	var domain string
	var tk []string
	switch {
	case n == 9:
		tk = t[2:9]
	case n >= 11:
		if domain = t[2]; domain == "_" {
			domain = ""
		}
		tk = t[4:11]
	default:
		return bad()
	}
	var nums [5]uint64
	for i, s := range tk[2:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return bad()
		}
		nums[i] = v
	}
	return &jetstream.MsgMetadata{
		Stream: tk[0], Consumer: tk[1], NumDelivered: nums[0],
		Sequence:  jetstream.SequencePair{Stream: nums[1], Consumer: nums[2]},
		Timestamp: time.Unix(0, int64(nums[3])), NumPending: nums[4], Domain: domain,
	}, nil
}
