// Package sdk tests the Go client SDK (sdk/go/client) against a real natter running in-process.
package sdk

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natter-chat/natter/pkg/revision"
	"github.com/natter-chat/natter/sdk/go/client"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, apptest.IgnoreLibraryGoroutines()...) }

func dial(t *testing.T, url string, u apptest.User, device string, cursor *uint64) *client.Client {
	t.Helper()
	return dialWith(t, client.Config{URL: url, Token: u.Token, DeviceID: device, Cursor: cursor})
}

// dialWith connects a client with fast reconnects, closes it when the test ends, and waits
// until it has caught up.
func dialWith(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	c, err := client.Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("client %s not ready: %v", cfg.DeviceID, c.Err())
	}
	return c
}

func next(t *testing.T, c *client.Client) client.Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatalf("events closed: %v", c.Err())
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return client.Event{}
}

// SendWithID is one message however late it is called again: past JetStream's duplicate window
// the gateway finds the first in the store, because SendWithID marks every attempt a resend.
func TestSendWithIDAfterTheDuplicateWindowIsOneMessage(t *testing.T) {
	const window = 500 * time.Millisecond
	s := apptest.Start(t, func(c *app.Config) { c.Streams.DuplicateWindow = window })
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := dial(t, s.WSURL, alice, "a", nil)
	ctx := context.Background()

	ack, err := a.SendWithID(ctx, conv, "outbox-1", "hello")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * window) // JetStream forgets the id; the store keeps it
	again, err := a.SendWithID(ctx, conv, "outbox-1", "hello")
	if err != nil || again.MessageID != ack.MessageID || again.Seq != ack.Seq || !again.Duplicate {
		t.Fatalf("late SendWithID: %+v, %v; want the first ack (seq %d) again", again, err, ack.Seq)
	}
}

func TestSendReceiveAndIdempotentRetry(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a, b := dial(t, s.WSURL, alice, "a", nil), dial(t, s.WSURL, bob, "b", nil)
	ctx := context.Background()

	ack, err := a.SendWithID(ctx, conv, "hello-1", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.EditWindow(); got != revision.DefaultEditWindow { // told by welcome, before the ack
		t.Fatalf("edit window %s, want the server's %s", got, revision.DefaultEditWindow)
	}
	again, err := a.SendWithID(ctx, conv, "hello-1", "hello")
	if err != nil || again.MessageID != ack.MessageID || again.Seq != ack.Seq || !again.Duplicate {
		t.Fatalf("retry: %+v, %v; want the first ack again", again, err)
	}
	if ev := next(t, b); ev.MessageID != ack.MessageID || ev.Text != "hello" {
		t.Fatalf("bob got %+v", ev)
	}
	// The cursor moves just after the hand-over, never before it.
	for deadline := time.Now().Add(5 * time.Second); b.Cursor() != ack.Seq; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("cursor %d, want %d", b.Cursor(), ack.Seq)
		}
	}
}

func TestTypedErrors(t *testing.T) {
	s := apptest.Start(t)
	alice := s.SignUp("alice")
	a := dial(t, s.WSURL, alice, "a", nil)
	_, err := a.Send(context.Background(), "dnotmine", "hi")
	var pe *client.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeNotMember || client.Retryable(err) {
		t.Fatalf("got %v, want a non-retryable not_member error", err)
	}
}

// Stopping the server mid-stream: the client reconnects (same address, new process on the same
// data) and resumes from its cursor — nothing missed, nothing twice.
func TestReconnectResumesFromCursor(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *app.Config) { c.DataDir = dir; c.Gateway.Addr = "127.0.0.1:0" }
	s := apptest.Start(t, cfg)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	wsAddr := s.Run.Gateway.Addr()
	b := dial(t, s.WSURL, bob, "b", nil)
	a := dial(t, s.WSURL, alice, "a", nil)
	ctx := context.Background()
	var want []uint64
	for i := 0; i < 5; i++ {
		ack, err := a.Send(ctx, conv, "before")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ack.Seq)
	}
	for range want {
		next(t, b)
	}
	_ = a.Close() // alice's process ends; device "a" comes back below as a fresh client
	s.Stop()
	// While natter is down, bob's client keeps retrying. A new natter on the same data and the same
	// WebSocket address takes over; alice sends more from a fresh process of hers.
	s2 := apptest.Start(t, cfg, func(c *app.Config) { c.Gateway.Addr = wsAddr })
	a2 := dial(t, s2.WSURL, alice, "a", nil)
	for i := 0; i < 5; i++ {
		ack, err := a2.Send(ctx, conv, "after")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ack.Seq)
	}
	for _, seq := range want[5:] {
		if ev := next(t, b); ev.Seq != seq {
			t.Fatalf("after reconnect got seq %d, want %d", ev.Seq, seq)
		}
	}
	if b.Connects() < 2 {
		t.Fatalf("client connected %d times, want a reconnect", b.Connects())
	}
}

func TestReplacedDeviceStops(t *testing.T) {
	s := apptest.Start(t)
	alice := s.SignUp("alice")
	first := dial(t, s.WSURL, alice, "phone", nil)
	second, err := client.Dial(client.Config{URL: s.WSURL, Token: alice.Token, DeviceID: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	select {
	case _, ok := <-first.Events():
		if ok {
			t.Fatal("unexpected event")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("replaced client still running")
	}
	var ce *client.CloseError
	if !errors.As(first.Err(), &ce) || ce.Code != protocol.CloseReplaced {
		t.Fatalf("ended with %v, want close %d", first.Err(), protocol.CloseReplaced)
	}
}
