package consumer

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
)

// A pull ends with what the server sends for it — its batch or its status — not with this
// side's own give-up timer, which is only for requests lost on the way.
func TestAPullEndsWithTheServersAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.publish(t, 3)
	// The stream tells its consumers of a stored message after it acks the publish, on a
	// goroutine of its own: a no-wait pull before that finds nothing.
	for deadline := time.Now().Add(10 * time.Second); e.info(t).NumPending < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the consumer does not count the 3 messages published")
		}
	}
	p, err := newPuller(e.js, e.cons, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	r := &Runner{cfg: Config{MaxChunk: 10}, puller: p, in: make(chan jetstream.Msg, 10), held: newHeld(), log: zap.NewNop()}
	for _, c := range []struct {
		name       string
		batch      int
		wait       time.Duration
		want       int
		longerThan time.Duration
	}{
		{"no wait, fewer than asked for", 10, 0, 3, 0},
		{"no wait, nothing there", 10, 0, 0, 0},
		{"a wait with nothing there", 10, 300 * time.Millisecond, 0, 250 * time.Millisecond},
	} {
		start := time.Now()
		reply, err := p.send(c.batch, c.wait)
		if err != nil {
			t.Fatal(err)
		}
		n, lost, err := r.forward(reply, c.batch, c.wait)
		took := time.Since(start)
		if n != c.want || lost || err != nil {
			t.Fatalf("%s: %d messages, lost %v, err %v; want %d", c.name, n, lost, err, c.want)
		}
		// Giving up would take the wait and pullMargin.
		if took < c.longerThan || took >= c.wait+pullMargin {
			t.Fatalf("%s: the pull took %s; want at least %s and less than %s", c.name, took, c.longerThan, c.wait+pullMargin)
		}
		for range n {
			m := <-r.in
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
			if err := m.Ack(); err == nil {
				t.Fatalf("%s: a second ack was sent", c.name)
			}
		}
	}
}

// Messages the server sends for a pull this side already stopped waiting for are handed on by
// the next pull: nothing is lost, so an ack-all consumer needs no reset and an explicit-ack one
// gets no redelivery after its ack wait. (nats.go's Fetch drops them.) Here this side gives up
// on every pull halfway through its wait while messages trickle in, so that the server sends
// many of them to pulls given up on.
func TestMessagesOfAPullGivenUpOnAreHandled(t *testing.T) {
	margin := pullMargin
	t.Cleanup(func() { pullMargin = margin }) // after every Runner's Stop
	pullMargin = -fetchWait / 2
	for _, policy := range []jetstream.AckPolicy{jetstream.AckAllPolicy, jetstream.AckExplicitPolicy} {
		e := newEnvAcking(t, policy)
		rec := &recorder{}
		met := NewMetrics(nil)
		e.startWith(t, Config{Name: "impatient", MaxChunk: 7, RetryInPlace: true}, rec.handle, Hooks{}, met)
		var last uint64
		for range 60 { // slower than a pull's seven messages come before it is given up on
			last = e.publishMore(t, 1)
			time.Sleep(20 * time.Millisecond)
		}
		ci := e.settled(t, last)
		if got := rec.seqs(); !slices.Equal(got, seqRange(1, last)) {
			t.Fatalf("%s: handled %v, want 1..%d once each, in order", policy, got, last)
		}
		if n := testutil.ToFloat64(met.resets.WithLabelValues("impatient")); n != 0 || ci.NumRedelivered != 0 {
			t.Fatalf("%s: %v resets, %d redelivered; want none", policy, n, ci.NumRedelivered)
		}
	}
}

// The metadata of a delivery is read from its reply subject in both of JetStream's forms.
func TestParseMetadata(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		reply  string
		domain string
	}{
		{"$JS.ACK.CHAT.fanout.3.1047.1001.1764979200000000000.12", ""},
		{"$JS.ACK._.ACCHASH.CHAT.fanout.3.1047.1001.1764979200000000000.12", ""},
		{"$JS.ACK.hub.ACCHASH.CHAT.fanout.3.1047.1001.1764979200000000000.12.xyz", "hub"},
	} {
		meta, err := parseMetadata(c.reply)
		if err != nil {
			t.Fatalf("%s: %v", c.reply, err)
		}
		want := jetstream.MsgMetadata{Stream: "CHAT", Consumer: "fanout", NumDelivered: 3, NumPending: 12, Domain: c.domain,
			Sequence: jetstream.SequencePair{Stream: 1047, Consumer: 1001}, Timestamp: time.Unix(0, 1764979200000000000)}
		if *meta != want {
			t.Fatalf("%s: %+v, want %+v", c.reply, *meta, want)
		}
	}
	for _, bad := range []string{"", "_INBOX.x", "$JS.ACK.CHAT.fanout.3.1047", "$JS.ACK.CHAT.fanout.x.1047.1001.1.12", "$JS.ACK.a.b.CHAT.fanout.3.1047.1001.1"} {
		if _, err := parseMetadata(bad); err == nil {
			t.Fatalf("%q: no error", bad)
		}
	}
}

// The acknowledgements are the bodies JetStream reads.
func TestAcknowledgementBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub, err := e.nc.SubscribeSync("acks")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		settle func(*pulledMsg) error
		want   string
	}{
		{func(m *pulledMsg) error { return m.InProgress() }, "+WPI"},
		{func(m *pulledMsg) error { return m.Ack() }, "+ACK"},
		{func(m *pulledMsg) error { return m.Nak() }, "-NAK"},
		{func(m *pulledMsg) error { return m.NakWithDelay(2 * time.Second) }, `-NAK {"delay": 2000000000}`},
		{func(m *pulledMsg) error { return m.Term() }, "+TERM"},
		{func(m *pulledMsg) error { return m.TermWithReason("malformed") }, "+TERM malformed"},
	} {
		m := &pulledMsg{m: &nats.Msg{Reply: "acks"}, nc: e.nc}
		if err := c.settle(m); err != nil {
			t.Fatal(err)
		}
		got, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != c.want {
			t.Fatalf("sent %q, want %q", got.Data, c.want)
		}
	}
	m := &pulledMsg{m: &nats.Msg{Reply: "acks"}, nc: e.nc}
	_ = m.Ack()
	if err := m.Nak(); err != jetstream.ErrMsgAlreadyAckd {
		t.Fatalf("nak after ack: %v", err)
	}
	if err := m.InProgress(); err != jetstream.ErrMsgAlreadyAckd {
		t.Fatalf("in progress after ack: %v", err)
	}
	// A double ack waits for the server's answer.
	confirm, err := e.nc.Subscribe("double", func(msg *nats.Msg) {
		if string(msg.Data) == "+ACK" {
			_ = msg.Respond(nil)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = confirm.Unsubscribe() }()
	d := &pulledMsg{m: &nats.Msg{Reply: "double"}, nc: e.nc}
	if err := d.DoubleAck(e.ctx); err != nil {
		t.Fatalf("double ack: %v", err)
	}
	if err := d.DoubleAck(e.ctx); err != jetstream.ErrMsgAlreadyAckd {
		t.Fatalf("second double ack: %v", err)
	}
}
