package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
)

// TestKillNineAndRestartIsInvisibleToASyncedDevice: Alice sends five messages that Bob's laptop
// receives live; natter is killed with kill -9 and restarted on the same data. The laptop
// reconnects from its cursor and gets synced at it. From then on it must receive no event at or
// below that cursor — whatever fanout, whose acknowledgements may not have reached the disk,
// delivers again — and live delivery must resume at once: Alice's next messages arrive, in
// order, each once. It reports how long after the restart live delivery resumed.
func TestKillNineAndRestartIsInvisibleToASyncedDevice(t *testing.T) {
	dataDir := t.TempDir()
	p := StartNatter(t, dataDir)
	alice, bob := signUp(t, p.Addrs.API, "alice"), signUp(t, p.Addrs.API, "bob")
	conv := openDirect(t, p.Addrs.API, alice, bob)

	laptop, phone := connect(t, p.Addrs.WebSocket, bob, "laptop"), connect(t, p.Addrs.WebSocket, alice, "phone")
	var cursor uint64
	for i := range 5 {
		phone.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: fmt.Sprintf("m%d", i), Text: fmt.Sprintf("before %d", i)})
		phone.NextOf(protocol.TypeAck, wait)
	}
	for range 5 {
		f := laptop.NextOf(protocol.TypeMessage, wait)
		if f.Seq <= cursor {
			t.Fatalf("live seq %d after %d", f.Seq, cursor)
		}
		cursor = f.Seq // what a client following docs/protocol.md keeps
	}
	p.Kill()

	p = StartNatter(t, dataDir)
	restarted := time.Now()
	laptop = apptest.Dial(t, apptest.WSURLFor(p.Addrs.WebSocket, bob.Token, "laptop", &cursor))
	laptop.NextOf(protocol.TypeWelcome, wait)
	synced := laptop.Next(wait)
	if synced.Type != protocol.TypeSynced || synced.Cursor != cursor {
		t.Fatalf("after the restart the laptop got %+v first, want synced at its cursor %d", synced, cursor)
	}
	phone = connect(t, p.Addrs.WebSocket, alice, "phone")

	// Alice sends one message every 100 ms until the laptop has one live; then three more.
	var sent []uint64
	var got []uint64
	resumed, more := time.Duration(0), 3
	for i := 0; len(got) == 0 || more > 0; i++ {
		if len(got) > 0 {
			more--
		}
		if time.Since(restarted) > 60*time.Second {
			t.Fatalf("no live delivery within 60 s of the restart; sent %v", sent)
		}
		phone.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: fmt.Sprintf("after%d", i), Text: fmt.Sprintf("after %d", i)})
		ack := phone.NextOfAny(wait, protocol.TypeAck, protocol.TypeError)
		if ack.Type != protocol.TypeAck {
			t.Fatalf("send after the restart: %s", ack.Raw)
		}
		sent = append(sent, ack.Seq)
		if f, ok := laptop.TryNextOf(protocol.TypeMessage, 100*time.Millisecond); ok {
			got = append(got, checkAbove(t, f, cursor, got))
			if resumed == 0 {
				resumed = time.Since(restarted)
			}
		}
	}
	t.Logf("live delivery resumed %s after the restart (the new process ready)", resumed.Round(time.Millisecond))

	// Anything fanout still held when it was killed comes back within its ack wait (5 s): wait
	// that out, with a margin, and take every frame that arrives.
	quiet := time.Now().Add(8 * time.Second)
	for time.Now().Before(quiet) {
		if f, ok := laptop.TryNextOf(protocol.TypeMessage, 200*time.Millisecond); ok {
			got = append(got, checkAbove(t, f, cursor, got))
		}
	}
	if len(got) != len(sent) {
		t.Fatalf("laptop got %v live after the restart, want %v", got, sent)
	}
	for i := range sent {
		if got[i] != sent[i] {
			t.Fatalf("laptop got %v live after the restart, want %v", got, sent)
		}
	}
	p.Interrupt()
}

// checkAbove fails unless f is a message above the synced cursor and above what came before it.
func checkAbove(t *testing.T, f apptest.Frame, cursor uint64, before []uint64) uint64 {
	t.Helper()
	if f.Seq <= cursor {
		t.Fatalf("seq %d arrived after synced at %d (got before it: %v)", f.Seq, cursor, before)
	}
	if n := len(before); n > 0 && f.Seq <= before[n-1] {
		t.Fatalf("seq %d arrived after %d", f.Seq, before[n-1])
	}
	return f.Seq
}
