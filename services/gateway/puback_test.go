package gateway

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
)

// TestParsePubAckReadsWhatJetStreamAnswers: parsePubAck reads a real server's answers to
// publishes made as the publisher makes them (a core message with a reply subject): a stored
// message's seq, a retry inside the duplicate window as a duplicate of the first seq, the 503
// status of a subject no stream takes, and a stream's refusal.
func TestParsePubAckReadsWhatJetStreamAnswers(t *testing.T) {
	bus := natsxtest.Start(t)
	nc, js := bus.NC, bus.JS
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, MaxMsgSize: 64}); err != nil {
		t.Fatal(err)
	}
	answer := func(subject, id, data string) *nats.Msg {
		t.Helper()
		inbox := nc.NewInbox()
		answers := make(chan *nats.Msg, 1)
		sub, err := nc.ChanSubscribe(inbox, answers) // delivered as the publisher's handler gets it
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		m := nats.NewMsg(subject)
		m.Reply, m.Data = inbox, []byte(data)
		if id != "" {
			m.Header.Set(jetstream.MsgIDHeader, id)
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-answers:
			return a
		case <-time.After(5 * time.Second):
			t.Fatalf("no answer to a publish on %s", subject)
			return nil
		}
	}

	for i, want := range []uint64{1, 2} {
		seq, dup, err := parsePubAck(answer("s.a", string(rune('a'+i)), "hello"))
		if err != nil || seq != want || dup {
			t.Fatalf("publish %d: seq %d duplicate %v err %v, want seq %d", i, seq, dup, err, want)
		}
	}
	if seq, dup, err := parsePubAck(answer("s.a", "a", "hello again")); err != nil || seq != 1 || !dup {
		t.Fatalf("retry: seq %d duplicate %v err %v, want seq 1 as a duplicate", seq, dup, err)
	}
	if _, _, err := parsePubAck(answer("nostream.a", "", "hello")); !errors.Is(err, errNoStream) {
		t.Fatalf("a subject without a stream: %v, want errNoStream", err)
	}
	if _, _, err := parsePubAck(answer("s.a", "", strings.Repeat("x", 100))); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a message over the stream's size limit: %v, want the stream's refusal", err)
	}
}

// TestParsePubAckRefusesWhatIsNotAnAck: answers of other shapes are read by encoding/json or
// refused, never taken for a seq they do not hold.
func TestParsePubAckRefusesWhatIsNotAnAck(t *testing.T) {
	for data, want := range map[string]uint64{
		`{"stream":"CHAT","seq":7}`:                          7,
		`{"stream":"CHAT","seq":7,"duplicate":true}`:         7,
		`{"stream":"CHAT","domain":"hub","seq":8}`:           8,
		`{"stream":"CHAT", "seq":9}`:                         9,
		`{"stream":"CHAT","seq":7}x`:                         0,
		`{"stream":"CHAT","seq":0}`:                          0,
		`{"stream":"CHAT"}`:                                  0,
		`{"error":{"code":503,"description":"unavailable"}}`: 0,
		`not json`: 0,
	} {
		seq, _, err := parsePubAck(&nats.Msg{Data: []byte(data)})
		if seq != want || (err == nil) != (want > 0) {
			t.Errorf("%s: seq %d err %v, want seq %d", data, seq, err, want)
		}
	}
}

func FuzzParsePubAck(f *testing.F) {
	f.Add([]byte(`{"stream":"CHAT","seq":7,"duplicate":true}`))
	f.Add([]byte(`{"error":{"code":400,"err_code":10054,"description":"maximum payload exceeded"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, _, err := parsePubAck(&nats.Msg{Data: data})
		if (err == nil) != (seq > 0) {
			t.Fatalf("%q: seq %d with err %v", data, seq, err)
		}
	})
}
