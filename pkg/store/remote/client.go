package remote

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter/pkg/store"
)

// ClientConfig configures Dial. The zero value is usable.
type ClientConfig struct {
	// Prefix of the subjects; DefaultPrefix if empty. Client and server must agree.
	Prefix string
	// Timeout bounds a call whose context has no deadline; 10s if 0. A call whose context has
	// a deadline is bounded by that alone.
	Timeout time.Duration
	// MinBackoff is the first wait before retrying a request that did not run; 5ms if 0.
	// Each further wait doubles, up to MaxBackoff (200ms if 0), with jitter.
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 5 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 200 * time.Millisecond
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	return c
}

// Validate checks the configuration; zero values stand for their defaults.
func (c ClientConfig) Validate() error {
	if err := validPrefix(c.Prefix); err != nil {
		return err
	}
	if c.Timeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 {
		return errors.New("remote store: timeout and backoffs must not be negative")
	}
	return nil
}

// Client is a store.Store whose every method is a request to a Server. It is safe for
// concurrent use and holds no state but its configuration: many clients, in many processes,
// may share one server. See the package documentation for what it retries.
type Client struct {
	nc       *nats.Conn
	cfg      ClientConfig
	subjects [numMethods]string
	closed   atomic.Bool
}

var _ store.Store = (*Client)(nil)

// Dial returns a client of the servers on nc. It sends nothing: a server that is not up yet
// (or restarting) is waited for by each call, within its deadline. The caller keeps owning nc.
func Dial(nc *nats.Conn, cfg ClientConfig) (*Client, error) {
	if nc == nil {
		return nil, errors.New("remote store: Dial needs a connection")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{nc: nc, cfg: cfg.withDefaults()}
	for m := range numMethods {
		c.subjects[m] = c.cfg.Prefix + "." + methodNames[m]
	}
	return c, nil
}

// Close makes every later call fail with ErrClosed. It does not close the NATS connection,
// which the caller owns, and does not wait for calls in flight.
func (c *Client) Close() error {
	c.closed.Store(true)
	return nil
}

// withTimeout gives ctx the configured timeout unless it has a deadline.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

// call sends req to the server of m and returns its answer, retrying while the request
// provably did not run: no server was subscribed (nats.ErrNoResponders), or the server turned
// it away as busy. Anything else, a timeout above all, is returned as it is: the request may
// have run.
func (c *Client) call(ctx context.Context, m method, req *request) (response, error) {
	if c.closed.Load() {
		return response{}, ErrClosed
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	backoff := c.cfg.MinBackoff
	var retried error // why the last attempt is being retried
	for attempt := 1; ; attempt++ {
		resp, err := c.once(ctx, m, req)
		if err == nil {
			return resp, nil
		}
		if retried != nil && errors.Is(err, errDeadlinePassed) {
			// The deadline passed before this attempt was sent: say why it was retried, as the
			// wait below does (a timeout of a sent request is returned as it is: it may have run).
			return response{}, fmt.Errorf("remote store: %s: %w (%d attempts): %w", m, retried, attempt-1, err)
		}
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, ErrBusy) {
			return response{}, fmt.Errorf("remote store: %s: %w", m, err)
		}
		retried = err
		// Full jitter over [backoff/2, backoff): retries of many callers spread out.
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, c.cfg.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return response{}, fmt.Errorf("remote store: %s: %w (%d attempts): %w", m, err, attempt, ctx.Err())
		}
	}
}

// errDeadlinePassed: the deadline passed before a request was sent (so it did not run).
var errDeadlinePassed = fmt.Errorf("deadline passed before the request was sent: %w", context.DeadlineExceeded)

// once makes one request. ctx has a deadline.
func (c *Client) once(ctx context.Context, m method, req *request) (response, error) {
	deadline, _ := ctx.Deadline()
	req.timeout = time.Until(deadline)
	if req.timeout <= 0 {
		// The deadline has passed, but ctx's timer may not have fired yet (ctx.Err() still nil on
		// a busy machine): that must not read as an empty success.
		return response{}, errDeadlinePassed
	}
	msg, err := c.nc.RequestWithContext(ctx, c.subjects[m], encodeRequest(m, req))
	if err != nil {
		return response{}, err
	}
	resp, err := decodeResponse(m, msg.Data)
	if err != nil {
		return response{}, fmt.Errorf("decode reply: %w", err)
	}
	if resp.code != "" {
		return response{}, &Error{Code: resp.code, Message: resp.message}
	}
	return resp, nil
}

// CreateUser and the methods below are store.Store's, with its contract; each is one request
// (Messages one or more, see there).
func (c *Client) CreateUser(ctx context.Context, u store.User) error {
	_, err := c.call(ctx, mCreateUser, &request{user: u})
	return err
}

func (c *Client) UserByID(ctx context.Context, id string) (store.User, error) {
	r, err := c.call(ctx, mUserByID, &request{a: id})
	return r.user, err
}

func (c *Client) UserByHandle(ctx context.Context, handle string) (store.User, error) {
	r, err := c.call(ctx, mUserByHandle, &request{a: handle})
	return r.user, err
}

func (c *Client) UpdateProfile(ctx context.Context, userID, displayName string) error {
	_, err := c.call(ctx, mUpdateProfile, &request{a: userID, b: displayName})
	return err
}

func (c *Client) DeleteUser(ctx context.Context, userID string) error {
	_, err := c.call(ctx, mDeleteUser, &request{a: userID})
	return err
}

func (c *Client) PutConversation(ctx context.Context, conv store.Conversation) error {
	_, err := c.call(ctx, mPutConversation, &request{conv: conv})
	return err
}

func (c *Client) Conversation(ctx context.Context, id string) (store.Conversation, error) {
	r, err := c.call(ctx, mConversation, &request{a: id})
	return r.conv, err
}

func (c *Client) PutMember(ctx context.Context, m store.Member) error {
	_, err := c.call(ctx, mPutMember, &request{mem: m})
	return err
}

func (c *Client) Member(ctx context.Context, conversationID, userID string) (store.Member, error) {
	r, err := c.call(ctx, mMember, &request{a: conversationID, b: userID})
	return r.mem, err
}

func (c *Client) Members(ctx context.Context, conversationID string) ([]store.Member, error) {
	r, err := c.call(ctx, mMembers, &request{a: conversationID})
	return r.mems, err
}

func (c *Client) MembershipsOf(ctx context.Context, userID string) ([]store.Member, error) {
	r, err := c.call(ctx, mMembershipsOf, &request{a: userID})
	return r.mems, err
}

func (c *Client) InsertMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	r, err := c.call(ctx, mInsertMessage, &request{msg: m})
	return r.msg, r.inserted, err
}

func (c *Client) MessageByClientID(ctx context.Context, senderID, clientMsgID string) (store.Message, error) {
	r, err := c.call(ctx, mMessageByClientID, &request{a: senderID, b: clientMsgID})
	return r.msg, err
}

func (c *Client) MessageByID(ctx context.Context, conversationID, messageID string) (store.Message, error) {
	r, err := c.call(ctx, mMessageByID, &request{a: conversationID, b: messageID})
	return r.msg, err
}

// ReviseMessage implements store.Reviser; the served store must implement it too.
func (c *Client) ReviseMessage(ctx context.Context, conversationID string, seq uint64, rev store.Revision) (store.Message, error) {
	r, err := c.call(ctx, mReviseMessage, &request{a: conversationID, seq: seq, rev: rev})
	return r.msg, err
}

// Messages returns a page of a conversation, newest first. A page too large for one reply
// (up to MaxPageLimit messages of up to 100,000 code points each is far more than a NATS max
// payload) comes in parts: the server answers with the part that fits and says so, and Messages
// asks for the rest with Before (or After, for a forward page) set past that part, until the
// page is whole or the conversation ends. Each part is read by one store call, so a page in
// parts is not one snapshot: a message inserted meanwhile among the parts already read is
// missing, as it would be had it come just after a one-part read.
func (c *Client) Messages(ctx context.Context, conversationID string, p store.Page) ([]store.Message, error) {
	ctx, cancel := c.withTimeout(ctx) // one deadline for every part
	defer cancel()
	r, err := c.call(ctx, mMessages, &request{a: conversationID, page: p})
	if err != nil || !r.truncated {
		return r.msgs, err
	}
	p, err = p.Normalize()
	if err != nil {
		return nil, fmt.Errorf("remote store: Messages: partial reply to a bad page: %w", err)
	}
	forward := p.Forward()
	out := r.msgs
	step := len(r.msgs) // ask for about as many as fitted last time
	for {
		if len(r.msgs) == 0 {
			return nil, fmt.Errorf("remote store: Messages: empty partial reply: %w", errMalformed)
		}
		if len(out) >= p.Limit {
			return out, nil
		}
		next := store.Page{Limit: min(p.Limit-len(out), step)}
		if forward {
			next.After = out[0].Seq // the newest so far
		} else {
			next.Before = out[len(out)-1].Seq // the oldest so far
		}
		r, err = c.call(ctx, mMessages, &request{a: conversationID, page: next})
		if err != nil {
			return nil, err
		}
		if forward {
			out = append(r.msgs, out...)
		} else {
			out = append(out, r.msgs...)
		}
		if !r.truncated {
			if len(r.msgs) < next.Limit {
				return out, nil // the conversation has no more
			}
			step *= 2
			continue
		}
		step = len(r.msgs)
	}
}

func (c *Client) PutDevice(ctx context.Context, d store.Device) error {
	_, err := c.call(ctx, mPutDevice, &request{dev: d})
	return err
}

func (c *Client) Devices(ctx context.Context, userID string) ([]store.Device, error) {
	r, err := c.call(ctx, mDevices, &request{a: userID})
	return r.devs, err
}

func (c *Client) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	_, err := c.call(ctx, mDeleteDevice, &request{a: userID, b: deviceID})
	return err
}

func (c *Client) PutPushToken(ctx context.Context, t store.PushToken) error {
	_, err := c.call(ctx, mPutPushToken, &request{token: t})
	return err
}

func (c *Client) DeletePushToken(ctx context.Context, userID, deviceID string) error {
	_, err := c.call(ctx, mDeletePushToken, &request{a: userID, b: deviceID})
	return err
}

func (c *Client) PushTokens(ctx context.Context, userID string) ([]store.PushToken, error) {
	r, err := c.call(ctx, mPushTokens, &request{a: userID})
	return r.tokens, err
}

func (c *Client) AdvanceWatermark(ctx context.Context, w store.Watermark) (store.Watermark, error) {
	r, err := c.call(ctx, mAdvanceWatermark, &request{wm: w})
	return r.wm, err
}

func (c *Client) Watermark(ctx context.Context, conversationID, userID string) (store.Watermark, error) {
	r, err := c.call(ctx, mWatermark, &request{a: conversationID, b: userID})
	return r.wm, err
}

func (c *Client) Watermarks(ctx context.Context, conversationID string) ([]store.Watermark, error) {
	r, err := c.call(ctx, mWatermarks, &request{a: conversationID})
	return r.wms, err
}

func (c *Client) CreateSession(ctx context.Context, s store.Session) error {
	_, err := c.call(ctx, mCreateSession, &request{sess: s})
	return err
}

func (c *Client) Session(ctx context.Context, id string) (store.Session, error) {
	r, err := c.call(ctx, mSession, &request{a: id})
	return r.sess, err
}

func (c *Client) Sessions(ctx context.Context, userID string) ([]store.Session, error) {
	r, err := c.call(ctx, mSessions, &request{a: userID})
	return r.sessions, err
}

func (c *Client) RotateSession(ctx context.Context, id string, oldHash, newHash []byte, usedAt time.Time) (store.Session, error) {
	r, err := c.call(ctx, mRotateSession, &request{a: id, h1: oldHash, h2: newHash, at: usedAt})
	return r.sess, err
}

func (c *Client) RevokeSession(ctx context.Context, id string, revokedAt time.Time) (store.Session, error) {
	r, err := c.call(ctx, mRevokeSession, &request{a: id, at: revokedAt})
	return r.sess, err
}
