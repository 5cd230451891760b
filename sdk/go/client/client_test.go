package client

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// The upgrade names the device, the token and the cursor; events at or below the cursor are
// repeats and dropped; synced moves the cursor and makes the client ready.
func TestEventsComeOnceInOrderFromTheCursor(t *testing.T) {
	g := newGateway(t)
	five := uint64(5)
	c := dial(t, g, Config{Cursor: &five})
	s := g.next()
	if s.query.Get("device") != "phone" || s.query.Get("cursor") != "5" || s.token != "t1" {
		t.Fatalf("upgrade: query %v token %q, want device phone, cursor 5, token t1", s.query, s.token)
	}
	s.welcome(7, message(4, "old"), message(6, "a"), message(7, "b"), message(6, "a again"))
	for _, want := range []uint64{6, 7} {
		if e := nextEvent(t, c); e.Seq != want {
			t.Fatalf("event %+v, want seq %d", e, want)
		}
	}
	select {
	case <-c.Ready():
	case <-time.After(wait):
		t.Fatal("not ready after synced")
	}
	if c.Cursor() != 7 || c.EditWindow() != 15*time.Minute {
		t.Errorf("cursor %d, edit window %v; want 7, 15m", c.Cursor(), c.EditWindow())
	}
	s.send(message(8, "live"))
	if e := nextEvent(t, c); e.Seq != 8 || e.Text != "live" {
		t.Errorf("live event %+v", e)
	}
}

// A closed or broken socket is reconnected from the cursor of the last event handed over; the
// replayed repeat is dropped.
func TestReconnectResumesFromTheCursor(t *testing.T) {
	g := newGateway(t)
	c := dial(t, g, Config{})
	s := g.next()
	if s.query.Has("cursor") {
		t.Fatalf("first upgrade without a configured cursor has one: %v", s.query)
	}
	s.welcome(10)
	s.send(message(11, "a"))
	s.send(message(12, "b"))
	nextEvent(t, c)
	nextEvent(t, c)
	s.close(websocket.StatusCode(protocol.CloseShutdown))

	s = g.next()
	if s.query.Get("cursor") != "12" {
		t.Fatalf("reconnect cursor %q, want 12", s.query.Get("cursor"))
	}
	s.welcome(13, message(12, "b"), message(13, "c"))
	if e := nextEvent(t, c); e.Seq != 13 {
		t.Fatalf("after the reconnect: %+v, want seq 13", e)
	}
	_ = s.ws.CloseNow() // dropped without a close frame: reconnect too
	if s = g.next(); s.query.Get("cursor") != "13" {
		t.Errorf("second reconnect: cursor %q, want 13", s.query.Get("cursor"))
	}
	for deadline := time.Now().Add(wait); c.Connects() != 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connects, want 3", c.Connects())
		}
	}
}

// A server that says not to reconnect ends the client with its close code; 4401 (token refused)
// ends it too, unless a TokenSource can hand over a fresh token.
func TestCloseCodesDecideTheReconnect(t *testing.T) {
	for _, code := range []protocol.CloseCode{protocol.CloseReplaced, protocol.CloseUnauthorized, protocol.CloseSessionEnded, protocol.ClosePolicy} {
		t.Run(strconv.Itoa(int(code)), func(t *testing.T) {
			g := newGateway(t)
			c := dial(t, g, Config{})
			s := g.next()
			s.welcome(1)
			s.close(websocket.StatusCode(code))
			ended(t, c)
			var ce *CloseError
			if !errors.As(c.Err(), &ce) || ce.Code != code || c.Connects() != 1 {
				t.Errorf("err %v after %d connects, want CloseError %d after 1", c.Err(), c.Connects(), code)
			}
			if _, err := c.Send(context.Background(), "g1", "hi"); !errors.As(err, &ce) || Retryable(err) {
				t.Errorf("send on the ended client: %v", err)
			}
		})
	}
	t.Run("4401 with a TokenSource", func(t *testing.T) {
		g := newGateway(t)
		var n atomic.Int64
		c := dial(t, g, Config{TokenSource: func(context.Context) (string, error) { return "t" + strconv.FormatInt(n.Add(1), 10), nil }})
		s := g.next()
		s.welcome(1)
		s.close(websocket.StatusCode(protocol.CloseUnauthorized))
		if s = g.next(); s.token != "t2" || c.Err() != nil {
			t.Errorf("reconnected with %q (client error %v), want the fresh token t2", s.token, c.Err())
		}
	})
}

// A TokenSource that says the login session ended stops the client before it dials.
func TestEndedSessionStopsTheClient(t *testing.T) {
	g := newGateway(t)
	c := dial(t, g, Config{TokenSource: func(context.Context) (string, error) { return "", ErrSessionEnded }})
	ended(t, c)
	if !errors.Is(c.Err(), ErrSessionEnded) || c.Connects() != 0 {
		t.Errorf("err %v after %d connects, want ErrSessionEnded after none", c.Err(), c.Connects())
	}
}

// A frame the client cannot decode ends the socket; the client reconnects from its cursor.
func TestUndecodableFrameReconnects(t *testing.T) {
	g := newGateway(t)
	c := dial(t, g, Config{})
	s := g.next()
	s.welcome(3)
	if err := s.ws.Write(context.Background(), websocket.MessageText, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if s = g.next(); s.query.Get("cursor") != "3" || c.Err() != nil {
		t.Errorf("reconnect cursor %q, err %v; want 3, none", s.query.Get("cursor"), c.Err())
	}
}

// Acks and errors are matched to their send by client message id, in whatever order they come.
func TestAcksAndErrorsFindTheirSend(t *testing.T) {
	g := newGateway(t)
	c := dial(t, g, Config{})
	s := g.next()
	s.welcome(1)
	type answer struct {
		ack Ack
		err error
	}
	answers := make([]chan answer, 3)
	for i, text := range []string{"first", "second", "third"} {
		answers[i] = make(chan answer, 1)
		go func() {
			ack, err := c.SendWithID(context.Background(), "g1", text, text)
			answers[i] <- answer{ack, err}
		}()
	}
	got := map[string]protocol.ClientFrame{}
	for range 3 {
		f := s.read()
		got[f.ClientMsgID] = f
	}
	if f := got["first"]; f.Type != protocol.TypeSend || f.Text != "first" || f.ConversationID != "g1" || !f.Resend {
		t.Errorf("send frame %+v, want a send of first marked resend (SendWithID)", f)
	}
	s.send(protocol.Error{Type: protocol.TypeError, Code: protocol.CodeNotMember, Message: "no", Ref: "third"})
	s.send(Ack{Type: protocol.TypeAck, ClientMsgID: "second", ConversationID: "g1", Seq: 21})
	s.send(Ack{Type: protocol.TypeAck, ClientMsgID: "first", ConversationID: "g1", Seq: 20, Duplicate: true})
	for i, want := range []uint64{20, 21} {
		select {
		case a := <-answers[i]:
			if a.err != nil || a.ack.Seq != want || a.ack.Duplicate != (i == 0) {
				t.Errorf("send %d: %+v %v, want seq %d", i, a.ack, a.err, want)
			}
		case <-time.After(wait):
			t.Fatalf("send %d got no answer", i)
		}
	}
	select {
	case a := <-answers[2]:
		var pe *Error
		if !errors.As(a.err, &pe) || pe.Code != protocol.CodeNotMember || Retryable(a.err) {
			t.Errorf("third: %v, want a not_member Error, not retryable", a.err)
		}
	case <-time.After(wait):
		t.Fatal("third got no answer")
	}
}

// A send without an ack in time, or answered with a retryable error, or cut by a reconnect, is
// sent again with the same client message id, marked resend, until it is acked.
func TestSendRetriesWithTheSameID(t *testing.T) {
	g := newGateway(t)
	c := dial(t, g, Config{AttemptTimeout: 100 * time.Millisecond})
	s := g.next()
	s.welcome(1)
	done := make(chan Ack, 1)
	go func() {
		ack, err := c.Send(context.Background(), "g1", "hi")
		if err != nil {
			t.Errorf("send: %v", err)
		}
		done <- ack
	}()
	first := s.read()
	if first.Resend || first.ClientMsgID == "" {
		t.Fatalf("first attempt %+v, want a fresh id, not marked resend", first)
	}
	// No answer: the attempt times out and is made again.
	again := s.read()
	s.send(protocol.Error{Type: protocol.TypeError, Code: protocol.CodeUnavailable, Ref: again.ClientMsgID})
	third := s.read()
	s.close(websocket.StatusCode(protocol.CloseShutdown))
	s = g.next()
	s.welcome(1)
	last := s.read()
	for _, f := range []protocol.ClientFrame{again, third, last} {
		if f.ClientMsgID != first.ClientMsgID || !f.Resend || f.Text != "hi" {
			t.Fatalf("retry %+v, want %s again marked resend", f, first.ClientMsgID)
		}
	}
	s.send(Ack{Type: protocol.TypeAck, ClientMsgID: first.ClientMsgID, ConversationID: "g1", Seq: 2})
	select {
	case ack := <-done:
		if ack.Seq != 2 {
			t.Errorf("ack %+v, want seq 2", ack)
		}
	case <-time.After(wait):
		t.Fatal("send got no answer")
	}
}

// Edits, deletes and marks go out as the protocol's frames.
func TestEditDeleteAndMarkFrames(t *testing.T) {
	g := newGateway(t)
	c := dial(t, g, Config{})
	s := g.next()
	s.welcome(1)
	ctx := context.Background()
	go func() { _, _ = c.EditWithID(ctx, "g1", "e1", 7, "fixed") }()
	if f := s.read(); f.Type != protocol.TypeEdit || f.ClientMsgID != "e1" || f.TargetSeq != 7 || f.Text != "fixed" || !f.Resend {
		t.Errorf("edit frame %+v", f)
	}
	go func() { _, _ = c.DeleteWithID(ctx, "g1", "x1", 7, true) }()
	if f := s.read(); f.Type != protocol.TypeDelete || f.TargetSeq != 7 || f.For != protocol.DeleteForMe {
		t.Errorf("delete-for-me frame %+v", f)
	}
	go func() { _, _ = c.DeleteWithID(ctx, "g1", "x2", 8, false) }()
	if f := s.read(); f.Type != protocol.TypeDelete || f.TargetSeq != 8 || f.For != "" {
		t.Errorf("delete frame %+v", f)
	}
	if err := c.MarkRead(ctx, "g1", 9); err != nil {
		t.Fatal(err)
	}
	if f := s.read(); f.Type != protocol.TypeRead || f.UpTo != 9 || f.ConversationID != "g1" {
		t.Errorf("read frame %+v", f)
	}
}

// With a TokenSource the open socket is renewed by an auth frame carrying a fresh token once
// four fifths of the socket's remaining life have passed, and again after each renewal.
func TestSocketIsRenewedBeforeItExpires(t *testing.T) {
	g := newGateway(t)
	var n atomic.Int64
	dial(t, g, Config{TokenSource: func(context.Context) (string, error) { return "t" + strconv.FormatInt(n.Add(1), 10), nil }})
	s := g.next()
	const life = 1500 * time.Millisecond
	sent := time.Now()
	expires := sent.Add(life)
	s.send(protocol.Welcome{Type: protocol.TypeWelcome, DeviceID: "phone", ExpiresAt: expires.UnixMilli()})
	s.send(protocol.Synced{Type: protocol.TypeSynced})
	for i := 1; i <= 2; i++ {
		f := s.read()
		at := time.Now()
		if f.Type != protocol.TypeAuth || f.ID != "renew-"+strconv.Itoa(i) || f.Token != "t"+strconv.Itoa(i+1) {
			t.Fatalf("renewal %d: %+v, want auth renew-%d with token t%d", i, f, i, i+1)
		}
		// Never early (late is possible on a busy machine): the expiry is in milliseconds.
		if earliest := sent.Add(expires.Sub(sent)*4/5 - time.Millisecond); at.Before(earliest) {
			t.Errorf("renewal %d at %v, before four fifths of the life (%v)", i, at.Sub(sent), earliest.Sub(sent))
		}
		sent, expires = time.Now(), time.Now().Add(life)
		s.send(map[string]any{"type": protocol.TypeAuth, "ref": f.ID, "expires_at": expires.UnixMilli()})
	}
}

// Request notices reach OnRequest decoded.
func TestRequestNoticesReachOnRequest(t *testing.T) {
	g := newGateway(t)
	notices := make(chan RequestNotice, 1)
	dial(t, g, Config{OnRequest: func(n RequestNotice) { notices <- n }})
	s := g.next()
	s.welcome(1)
	want := RequestNotice{Type: protocol.TypeRequest, ConversationID: "d1", From: "u2", To: "u1", State: RequestOpen, At: 123}
	s.send(want)
	select {
	case got := <-notices:
		if got != want {
			t.Errorf("notice %+v, want %+v", got, want)
		}
	case <-time.After(wait):
		t.Fatal("no notice")
	}
}

// Close ends a connected client and its Events; calls after it fail with ErrClosed.
func TestCloseEndsTheClient(t *testing.T) {
	g := newGateway(t)
	c := dial(t, g, Config{})
	s := g.next()
	s.welcome(1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range c.Events() {
		}
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := c.Send(context.Background(), "g1", "hi"); !errors.Is(err, ErrClosed) {
		t.Errorf("send after close: %v, want ErrClosed", err)
	}
}

// The reconnect delay is full jitter: between half the base and the base doubled per attempt,
// capped, and it varies.
func TestBackoffIsJitteredWithinItsBounds(t *testing.T) {
	base, ceiling := 100*time.Millisecond, 3*time.Second
	for attempt := range 70 {
		top := ceiling
		if attempt < 5 {
			top = base << attempt
		}
		seen := map[time.Duration]bool{}
		for range 50 {
			d := backoff(attempt, base, ceiling)
			if d < base/2 || d > base/2+top {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, base/2, base/2+top)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("attempt %d: %d distinct delays in 50, want jitter", attempt, len(seen))
		}
	}
}

// Config requires an address, a token and a device, and fills in the rest.
func TestConfigDefaults(t *testing.T) {
	for _, cfg := range []Config{{Token: "t", DeviceID: "d"}, {URL: "ws://x", DeviceID: "d"}, {URL: "ws://x", Token: "t"}} {
		if _, err := Dial(cfg); err == nil {
			t.Errorf("Dial(%+v) without a required field succeeded", cfg)
		}
	}
	cfg := Config{URL: "ws://x", Token: "t", DeviceID: "d", MinBackoff: 20 * time.Second}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBackoff != 20*time.Second || cfg.AttemptTimeout != 5*time.Second || cfg.EventBuffer != 1024 {
		t.Errorf("defaults %+v", cfg)
	}
}

// Discover is asked before every connection attempt; a failed discovery is retried like a
// failed dial.
func TestDiscoverIsAskedBeforeEveryAttempt(t *testing.T) {
	g := newGateway(t)
	var asked atomic.Int64
	dial(t, g, Config{Discover: func(context.Context) (string, error) {
		if asked.Add(1) == 1 {
			return "", errors.New("no gateway yet")
		}
		return g.url(), nil
	}})
	s := g.next()
	s.welcome(1)
	s.close(websocket.StatusCode(protocol.CloseShutdown))
	g.next()
	if n := asked.Load(); n != 3 {
		t.Errorf("discovery asked %d times for 2 connections after a failure, want 3", n)
	}
}
