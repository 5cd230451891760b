package app_test

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

// TestDeliveriesToThisProcessSkipNATS: with fanout, presence and the gateway in one process,
// messages, receipts, typing and presence reach the sockets by direct calls (streams.Courier):
// nothing is published on any gateway's delivery subject.
func TestDeliveriesToThisProcessSkipNATS(t *testing.T) {
	s := apptest.Start(t)
	overNATS := make(chan *nats.Msg, 64)
	sub, err := s.Run.NC.ChanSubscribe(streams.DeliverSubject("*"), overNATS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := s.Run.NC.Flush(); err != nil {
		t.Fatal(err)
	}

	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := live(s, alice, "a")
	b := live(s, bob, "b") // alice's device is told bob is online
	a.NextOf(protocol.TypePresence, wait)
	seq := sendText(a, conv, "m1", "hello").Seq
	if got := nextEvent(b); got.Seq != seq {
		t.Fatalf("bob got seq %d, want %d", got.Seq, seq)
	}
	b.Send(protocol.ClientFrame{Type: protocol.TypeTyping, ConversationID: conv, State: protocol.TypingStart})
	a.NextOf(protocol.TypeTyping, wait)
	b.Send(protocol.ClientFrame{Type: protocol.TypeRead, ConversationID: conv, UpTo: seq})
	a.NextOf(protocol.TypeReceipt, wait)

	if err := s.Run.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-overNATS:
		t.Fatalf("a delivery went over NATS, on %s", m.Subject)
	default:
	}
}
