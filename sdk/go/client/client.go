// Package client is natter's Go client SDK. A Client keeps one device connected: it reconnects
// with exponential backoff and jitter, syncs from its cursor on every (re)connect so no event is
// missed or repeated, and retries sends with the same client message id so each send makes
// exactly one message.
//
// The cursor is the seq of the last event the client delivered. natter delivers one device's
// events in one global seq order (catch-up and live alike), so an event at or below the cursor is
// a repeat and is dropped: Events never yields the same event twice, and never out of order.
// Persist the Seq of the last event you kept, and pass it back in Config.Cursor after a restart.
//
// A Session (Login, Resume) keeps the account's tokens and makes the HTTP API's group calls:
// create, invite, accept or decline, roles, hand-over, leave and delete (docs/api.md, "Groups").
// Group membership changes arrive as member Events; an Event's Member.Action may be one this
// package does not name (servers add actions): ignore those.
//
// The SDK is the module github.com/natter-chat/natter/sdk/go (go get
// github.com/natter-chat/natter/sdk/go/client), apart from natter's server modules: it needs
// only github.com/coder/websocket and github.com/oklog/ulid/v2, and the frames of
// github.com/natter-chat/natter/sdk/go/protocol.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/oklog/ulid/v2"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// Config configures a Client.
type Config struct {
	// URL is the gateway's WebSocket URL (ws://host:port/v1/ws). Discover, if set, is asked
	// instead before every connection attempt (e.g. GET /v1/discovery).
	URL      string
	Discover func(ctx context.Context) (string, error)
	// Token is the access token; TokenSource, if set, is asked before every connection attempt,
	// and again before the socket's token expires, to renew the open socket with an auth frame.
	// Session.Token is a TokenSource that refreshes: with it a socket stays open for as long as
	// its login session lasts. A TokenSource error wrapping ErrSessionEnded stops the Client
	// (Err says so).
	Token       string
	TokenSource func(ctx context.Context) (string, error)
	// DeviceID names this installation; keep it stable across restarts.
	DeviceID string
	// Cursor is where to resume: the seq of the last event this device has. Nil starts at the
	// current head (nothing is replayed).
	Cursor *uint64
	// MinBackoff and MaxBackoff bound the reconnect delay (full jitter, doubling per failure).
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one send attempt's wait for its ack before it is retried.
	AttemptTimeout time.Duration
	// EventBuffer is how many events may wait for the application. A full buffer pauses reading;
	// the server then closes the connection as slow, and the client reconnects and syncs.
	EventBuffer int
	// OnRequest, if set, is called with every request notice: a direct request made to or by
	// this user, or its answer (RequestNotice). It runs on the client's reading goroutine: it
	// must not block. Notices are live only: after a (re)connect, read the requests from
	// Session.Conversations. Group invitations arrive as member Events instead (InvitationChange).
	OnRequest func(RequestNotice)
}

// RequestNotice tells of a direct request made to or by this user, or of its answer: State is
// RequestOpen, RequestAccepted or RequestIgnored (the last only to the one who ignored it).
type RequestNotice = protocol.RequestNotice

// Request notice states.
const (
	RequestOpen     = "open"
	RequestAccepted = "accepted"
	RequestIgnored  = "ignored"
)

// InvitationChange reports whether e is a change of userID's invitation to a group: "invited" (the
// user is invited), "declined" (the invitation was declined or withdrawn), "accepted" (the user
// accepted, on this device or another), or "" when e is none of these. An invitee's devices get
// these member events live although the invitee sees nothing else of the group.
func InvitationChange(e Event, userID string) string {
	if e.Type != protocol.TypeMember || e.Member == nil {
		return ""
	}
	switch a := e.Member.Action; a {
	case "invited", "declined", "accepted":
		for _, u := range e.Member.UserIDs {
			if u == userID {
				return a
			}
		}
	}
	return ""
}

func (c *Config) defaults() error {
	if c.URL == "" && c.Discover == nil {
		return errors.New("client: URL or Discover is required")
	}
	if c.Token == "" && c.TokenSource == nil {
		return errors.New("client: Token or TokenSource is required")
	}
	if c.DeviceID == "" {
		return errors.New("client: DeviceID is required")
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(c.MinBackoff, 10*time.Second)
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 5 * time.Second
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = 1024
	}
	return nil
}

// Ack says a message exists, durably, at Seq.
type Ack = protocol.Ack

// Event is a message, a membership change, or an edit, delete or hide of a message, delivered
// to this device (Messages.Apply folds them into what a device shows).
type Event = protocol.Event

// Error is an error the server answered with; Code says what went wrong.
type Error = protocol.Error

// ErrClosed is returned by calls on a closed client.
var ErrClosed = errors.New("client: closed")

// CloseError ends a client whose server said not to reconnect (e.g. token invalid, replaced by a
// newer connection of the same device).
type CloseError struct {
	Code   protocol.CloseCode
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("client: closed by server with %d: %s", e.Code, e.Reason)
}

// Retryable reports whether a send that failed with err may be retried with the same id.
func Retryable(err error) bool {
	var pe *Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case protocol.CodeUnavailable, protocol.CodeInternal, protocol.CodeRateLimited:
			return true
		}
		return false
	}
	return !errors.Is(err, ErrClosed) && !errors.As(err, new(*CloseError))
}

// Client is one connected device. Safe for concurrent use.
type Client struct {
	cfg    Config
	events chan Event
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{}
	once   sync.Once

	mu        sync.Mutex
	conn      *websocket.Conn // nil while disconnected
	connected chan struct{}   // closed while connected; replaced on disconnect
	cursor    uint64
	hasCursor bool
	pending   map[string]chan result // client_msg_id -> waiting Send
	err       error                  // why the client ended
	connects  int
	editMS    int64 // the edit window the server's last welcome told (0: no limit)
}

type result struct {
	ack Ack
	err error
}

// Dial starts a client: it connects (retrying as configured) in the background; Send waits for
// the connection. Close ends it.
func Dial(cfg Config) (*Client, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{cfg: cfg, events: make(chan Event, cfg.EventBuffer), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), ready: make(chan struct{}), connected: make(chan struct{}), pending: map[string]chan result{}}
	if cfg.Cursor != nil {
		c.cursor, c.hasCursor = *cfg.Cursor, true
	}
	go c.run()
	return c, nil
}

// EditWindow is how long after sending a message its sender may edit it, as the server said
// when the client last connected (0: no limit, or not connected yet). An edit after it is
// refused with edit_expired.
func (c *Client) EditWindow() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Duration(c.editMS) * time.Millisecond
}

// Ready is closed once the first connection has caught up: from then on every new event reaches
// Events (and, without a configured cursor, what came before is not replayed).
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Events yields this device's events in seq order, each once. It is closed when the client ends.
func (c *Client) Events() <-chan Event { return c.events }

// Cursor is the seq of the last event delivered (or caught up to). It never runs ahead of Events:
// it moves just after an event is handed over, so right after a receive it may still name the
// event before. To persist exactly what you kept, store each event's Seq with it.
func (c *Client) Cursor() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cursor
}

// Connects counts the connections made so far.
func (c *Client) Connects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connects
}

// Err says why a client ended (nil while it runs or after Close).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close disconnects and stops the client.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// Send sends text to a conversation with a fresh client message id and waits for its ack,
// retrying (same id) across timeouts, reconnects and retryable errors until ctx ends.
func (c *Client) Send(ctx context.Context, conversationID, text string) (Ack, error) {
	return c.send(ctx, conversationID, ulid.Make().String(), text, false)
}

// SendWithID is Send with a caller-chosen client message id: call it again with the same id
// (even from another process of the same user, however much later) and the result is still one
// message. Every attempt is marked as a resend, which costs the gateway a lookup of the id.
func (c *Client) SendWithID(ctx context.Context, conversationID, clientMsgID, text string) (Ack, error) {
	return c.send(ctx, conversationID, clientMsgID, text, true)
}

// send makes attempts until one is acked or fails for good; every attempt after the first, and
// the first too when sentBefore, is marked Resend.
func (c *Client) send(ctx context.Context, conversationID, clientMsgID, text string, sentBefore bool) (Ack, error) {
	return c.request(ctx, protocol.ClientFrame{Type: protocol.TypeSend, ClientMsgID: clientMsgID, ConversationID: conversationID, Text: text}, sentBefore)
}

// Edit replaces the text of this user's message at targetSeq (within the server's edit window)
// and waits for the ack of the edit, retrying like Send. Every device of every member gets an
// Event of Type "edit".
func (c *Client) Edit(ctx context.Context, conversationID string, targetSeq uint64, text string) (Ack, error) {
	return c.EditWithID(ctx, conversationID, ulid.Make().String(), targetSeq, text)
}

// EditWithID is Edit with a caller-chosen client message id (one edit however often retried).
func (c *Client) EditWithID(ctx context.Context, conversationID, clientMsgID string, targetSeq uint64, text string) (Ack, error) {
	return c.request(ctx, protocol.ClientFrame{Type: protocol.TypeEdit, ClientMsgID: clientMsgID, ConversationID: conversationID,
		TargetSeq: targetSeq, Text: text}, true)
}

// Delete deletes the message at targetSeq for everyone (its sender, or an admin of its group)
// or, with forMe, for this user only, and waits for the ack, retrying like Send.
func (c *Client) Delete(ctx context.Context, conversationID string, targetSeq uint64, forMe bool) (Ack, error) {
	return c.DeleteWithID(ctx, conversationID, ulid.Make().String(), targetSeq, forMe)
}

// DeleteWithID is Delete with a caller-chosen client message id.
func (c *Client) DeleteWithID(ctx context.Context, conversationID, clientMsgID string, targetSeq uint64, forMe bool) (Ack, error) {
	f := protocol.ClientFrame{Type: protocol.TypeDelete, ClientMsgID: clientMsgID, ConversationID: conversationID, TargetSeq: targetSeq}
	if forMe {
		f.For = protocol.DeleteForMe
	}
	return c.request(ctx, f, true)
}

// request sends f (a send, edit or delete) until it is acked or fails for good; every attempt
// after the first, and the first too when sentBefore, is marked Resend.
func (c *Client) request(ctx context.Context, f protocol.ClientFrame, sentBefore bool) (Ack, error) {
	clientMsgID := f.ClientMsgID
	f.Resend = sentBefore
	first, err := json.Marshal(f)
	if err != nil {
		return Ack{}, err
	}
	f.Resend = true
	resend, err := json.Marshal(f)
	if err != nil {
		return Ack{}, err
	}
	for attempt := 0; ; attempt++ {
		frame := resend
		if attempt == 0 {
			frame = first
		}
		ack, err := c.attempt(ctx, clientMsgID, frame)
		if err == nil || !Retryable(err) {
			return ack, err
		}
		if ctx.Err() != nil {
			return Ack{}, fmt.Errorf("send %s: %w (last error: %v)", clientMsgID, ctx.Err(), err)
		}
		if err := c.sleep(ctx, backoff(attempt, c.cfg.MinBackoff, c.cfg.MaxBackoff)); err != nil {
			return Ack{}, err
		}
	}
}

// MarkRead tells the conversation's members that this user has read every event up to upTo (a
// watermark: it only moves forward). Best effort: a lost mark is superseded by the next one.
func (c *Client) MarkRead(ctx context.Context, conversationID string, upTo uint64) error {
	return c.mark(ctx, protocol.TypeRead, conversationID, upTo)
}

// MarkDelivered tells that every event up to upTo reached this device.
func (c *Client) MarkDelivered(ctx context.Context, conversationID string, upTo uint64) error {
	return c.mark(ctx, protocol.TypeDelivered, conversationID, upTo)
}

func (c *Client) mark(ctx context.Context, kind, conversationID string, upTo uint64) error {
	frame, err := json.Marshal(protocol.ClientFrame{Type: kind, ConversationID: conversationID, UpTo: upTo})
	if err != nil {
		return err
	}
	conn, err := c.waitConnected(ctx)
	if err != nil {
		return err
	}
	return conn.Write(ctx, websocket.MessageText, frame)
}

func (c *Client) attempt(ctx context.Context, id string, frame []byte) (Ack, error) {
	conn, err := c.waitConnected(ctx)
	if err != nil {
		return Ack{}, err
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.pending[id] == ch {
			delete(c.pending, id)
		}
		c.mu.Unlock()
	}()
	actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	defer cancel()
	if err := conn.Write(actx, websocket.MessageText, frame); err != nil {
		return Ack{}, fmt.Errorf("send %s: write: %w", id, err)
	}
	select {
	case r := <-ch:
		return r.ack, r.err
	case <-actx.Done():
		return Ack{}, fmt.Errorf("send %s: no ack within %s", id, c.cfg.AttemptTimeout)
	case <-c.ctx.Done():
		return Ack{}, c.closedErr()
	}
}

func (c *Client) waitConnected(ctx context.Context) (*websocket.Conn, error) {
	for {
		c.mu.Lock()
		conn, connected := c.conn, c.connected
		c.mu.Unlock()
		if conn != nil {
			return conn, nil
		}
		select {
		case <-connected:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, c.closedErr()
		}
	}
}

func (c *Client) closedErr() error {
	if err := c.Err(); err != nil {
		return err
	}
	return ErrClosed
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return c.closedErr()
	}
}

// backoff is "full jitter": uniform in [0, min(max, base*2^attempt)], at least base/2.
func backoff(attempt int, base, ceiling time.Duration) time.Duration {
	d := ceiling
	if attempt < 30 {
		d = min(ceiling, base<<attempt)
	}
	return base/2 + time.Duration(rand.Int64N(int64(d)+1))
}

// run keeps the device connected until Close or a close code that forbids reconnecting.
func (c *Client) run() {
	defer close(c.done)
	defer close(c.events)
	for attempt := 0; c.ctx.Err() == nil; {
		err := c.session()
		if errors.Is(err, ErrSessionEnded) { // the TokenSource cannot renew: log in again
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			c.cancel()
			return
		}
		var ce *CloseError
		// An expired token is worth a reconnect when a TokenSource can hand over a fresh one.
		refreshable := c.cfg.TokenSource != nil && errors.As(err, &ce) && ce.Code == protocol.CloseUnauthorized
		if errors.As(err, &ce) && !ce.Code.Reconnect() && !refreshable {
			c.mu.Lock()
			c.err = ce
			c.mu.Unlock()
			c.cancel()
			return
		}
		if c.ctx.Err() != nil {
			return
		}
		if c.Connects() > 0 && errors.As(err, &ce) {
			attempt = 0 // a clean server close: come back soon, but still jittered
		}
		if c.sleep(c.ctx, backoff(attempt, c.cfg.MinBackoff, c.cfg.MaxBackoff)) != nil {
			return
		}
		attempt++
	}
}

// session runs one connection: dial with the cursor, read until it ends.
func (c *Client) session() error {
	u, token, err := c.endpoint()
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	conn, _, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPHeader: map[string][]string{"Authorization": {"Bearer " + token}}})
	cancel()
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	conn.SetReadLimit(protocol.HardFrameBytes)
	defer conn.CloseNow()
	stop := context.AfterFunc(c.ctx, func() { _ = conn.Close(websocket.StatusNormalClosure, "client closing") })
	defer stop()

	c.mu.Lock()
	c.conn = conn
	c.connects++
	close(c.connected)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.conn = nil
		c.connected = make(chan struct{})
		c.mu.Unlock()
	}()
	var expiries chan time.Time // the socket's expiry, as welcome and auth answers tell it
	if c.cfg.TokenSource != nil {
		expiries = make(chan time.Time, 1)
		rctx, stopRenewing := context.WithCancel(c.ctx)
		defer stopRenewing()
		go c.renew(rctx, conn, expiries)
	}
	for {
		_, data, err := conn.Read(c.ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code >= 4000 {
				return &CloseError{Code: protocol.CloseCode(code), Reason: err.Error()}
			}
			return fmt.Errorf("read: %w", err)
		}
		for frame := range protocol.Frames(data) {
			if err := c.handle(frame, expiries); err != nil {
				return err
			}
		}
	}
}

// renew keeps conn open past its access token's expiry: when four fifths of the token's
// remaining life have passed (Session.Token refreshes in its last quarter), it sends the
// TokenSource's token in an auth frame, and the server's answer tells the new expiry. A token
// that did not move the expiry is tried again halfway to it, while over a second is left. If
// renewing fails, the server closes the socket with 4401 at the expiry and run reconnects with
// a fresh token.
func (c *Client) renew(ctx context.Context, conn *websocket.Conn, expiries <-chan time.Time) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var expires time.Time
	for n := 1; ; {
		select {
		case <-ctx.Done():
			return
		case e := <-expiries:
			left := time.Until(e)
			switch {
			case e.After(expires):
				expires = e
				timer.Reset(left * 4 / 5)
			case left > 2*time.Second:
				timer.Reset(left / 2)
			}
		case <-timer.C:
			token, err := c.cfg.TokenSource(ctx)
			if err != nil {
				continue
			}
			frame, err := json.Marshal(protocol.ClientFrame{Type: protocol.TypeAuth, ID: "renew-" + strconv.Itoa(n), Token: token})
			if err != nil {
				continue
			}
			n++
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = conn.Write(wctx, websocket.MessageText, frame) // a failed write ends the socket's read too
			cancel()
		}
	}
}

func (c *Client) endpoint() (string, string, error) {
	u, token := c.cfg.URL, c.cfg.Token
	var err error
	if c.cfg.Discover != nil {
		if u, err = c.cfg.Discover(c.ctx); err != nil {
			return "", "", fmt.Errorf("discover: %w", err)
		}
	}
	if c.cfg.TokenSource != nil {
		if token, err = c.cfg.TokenSource(c.ctx); err != nil {
			return "", "", fmt.Errorf("token: %w", err)
		}
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return "", "", fmt.Errorf("url %q: %w", u, err)
	}
	q := parsed.Query()
	q.Set("device", c.cfg.DeviceID)
	q.Set(protocol.FramesParam, protocol.FramesLines)
	c.mu.Lock()
	if c.hasCursor {
		q.Set("cursor", strconv.FormatUint(c.cursor, 10))
	}
	c.mu.Unlock()
	parsed.RawQuery = q.Encode()
	return parsed.String(), token, nil
}

// frame is any server frame; Type selects the fields that apply.
type frame struct {
	protocol.Event
	Ref       string        `json:"ref"`
	Code      protocol.Code `json:"code"`
	Message   string        `json:"message"`
	Cursor    uint64        `json:"cursor"`
	Duplicate bool          `json:"duplicate"`
	ExpiresAt int64         `json:"expires_at"`
	EditMS    int64         `json:"edit_window_ms"`
}

// handle takes one server frame; expiries, if not nil, gets the socket's latest expiry.
func (c *Client) handle(data []byte, expiries chan time.Time) error {
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("bad frame from server: %w", err)
	}
	switch f.Type {
	case protocol.TypeAck:
		c.resolve(f.ClientMsgID, result{ack: Ack{Type: f.Type, Ref: f.Ref, ClientMsgID: f.ClientMsgID, ConversationID: f.ConversationID,
			MessageID: f.MessageID, Seq: f.Seq, SentAt: f.SentAt, Duplicate: f.Duplicate}})
	case protocol.TypeError:
		c.resolve(f.Ref, result{err: &Error{Type: f.Type, Code: f.Code, Message: f.Message, Ref: f.Ref}})
	case protocol.TypeMessage, protocol.TypeMember, protocol.TypeEdit, protocol.TypeDelete, protocol.TypeHide:
		c.mu.Lock()
		dup := c.hasCursor && f.Seq <= c.cursor
		c.mu.Unlock()
		if dup {
			return nil
		}
		select {
		case c.events <- f.Event:
		case <-c.ctx.Done():
			return c.ctx.Err() // not handed over: the cursor stays before it
		}
		// Only now: a cursor past an event the application never got would skip it for good.
		c.mu.Lock()
		c.cursor, c.hasCursor = f.Seq, true
		c.mu.Unlock()
	case protocol.TypeRequest:
		if c.cfg.OnRequest != nil {
			var n RequestNotice
			if err := json.Unmarshal(data, &n); err != nil {
				return fmt.Errorf("bad request notice from server: %w", err)
			}
			c.cfg.OnRequest(n)
		}
	case protocol.TypeWelcome, protocol.TypeAuth:
		if f.Type == protocol.TypeWelcome {
			c.mu.Lock()
			c.editMS = f.EditMS
			c.mu.Unlock()
		}
		if expiries != nil && f.ExpiresAt > 0 {
			select { // the only sender: make room for the latest
			case <-expiries:
			default:
			}
			expiries <- time.UnixMilli(f.ExpiresAt)
		}
	case protocol.TypeSynced:
		c.mu.Lock()
		c.cursor, c.hasCursor = f.Cursor, true // the server's head is authoritative
		c.mu.Unlock()
		c.once.Do(func() { close(c.ready) })
	}
	return nil
}

func (c *Client) resolve(id string, r result) {
	c.mu.Lock()
	ch := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- r
	}
}
