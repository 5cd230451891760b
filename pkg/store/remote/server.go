package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
)

const (
	// DefaultPrefix is the subject prefix of the methods: <prefix>.<Method>, e.g.
	// natter.store.v1.InsertMessage. The version is the wire format's (see wire.go).
	DefaultPrefix = "natter.store.v1"
	// DefaultQueueGroup is the queue group the servers of one store share.
	DefaultQueueGroup = "natter-store"
)

// ServerConfig configures Serve. The zero value is usable.
type ServerConfig struct {
	// Prefix of the subjects; DefaultPrefix if empty. Client and server must agree.
	Prefix string
	// QueueGroup the server subscribes in; DefaultQueueGroup if empty. Servers in one group
	// must serve the same backing store: each request goes to one of them.
	QueueGroup string
	// Workers is how many requests run at once; 64 if 0.
	Workers int
	// Backlog is how many requests wait for a worker; 1024 if 0. A request that finds every
	// worker busy and the backlog full is answered CodeBusy at once, without running.
	Backlog int
	// MaxReplyBytes is the size a reply aims to stay under; 0 (or more than the connection's
	// max payload) means the max payload. A page of messages larger than it is sent in several
	// replies (see Client.Messages); one message larger than it goes alone.
	MaxReplyBytes int
	// DefaultTimeout bounds a request that does not say how long its caller waits; 10s if 0.
	DefaultTimeout time.Duration
}

func (c ServerConfig) withDefaults() ServerConfig {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.QueueGroup == "" {
		c.QueueGroup = DefaultQueueGroup
	}
	if c.Workers == 0 {
		c.Workers = 64
	}
	if c.Backlog == 0 {
		c.Backlog = 1024
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = 10 * time.Second
	}
	return c
}

// Validate checks the configuration; zero values stand for their defaults.
func (c ServerConfig) Validate() error {
	if err := validPrefix(c.Prefix); err != nil {
		return err
	}
	if strings.ContainsAny(c.QueueGroup, " \t\r\n") {
		return fmt.Errorf("remote store: queue group %q has white space", c.QueueGroup)
	}
	if c.Workers < 0 || c.Backlog < 0 || c.MaxReplyBytes < 0 || c.DefaultTimeout < 0 {
		return errors.New("remote store: workers, backlog, max reply bytes and default timeout must not be negative")
	}
	return nil
}

// validPrefix accepts "" (the default) and dot-separated tokens without wildcards or white space.
func validPrefix(p string) error {
	if p == "" {
		return nil
	}
	for tok := range strings.SplitSeq(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return fmt.Errorf("remote store: prefix %q is not a subject without wildcards", p)
		}
	}
	return nil
}

// Server answers store requests from NATS with a store.Store. Create it with Serve, end it
// with Stop.
type Server struct {
	nc        *nats.Conn
	st        store.Store
	cfg       ServerConfig
	log       *zap.Logger
	sub       *nats.Subscription
	subClosed <-chan nats.SubStatus
	busy      []byte // the reply to a request turned away

	// ctx is the parent of every request's context; cancelled when Stop stops waiting.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.RWMutex // write-held by Stop to close work; read-held by dispatch to send
	stopping bool
	work     chan job
	workers  sync.WaitGroup

	stopOnce sync.Once
	stopErr  error
}

type job struct {
	msg      *nats.Msg
	method   method
	received time.Time
}

// Serve subscribes to <prefix>.> in the queue group and answers every method of store.Store
// with st, on a pool of workers. The caller keeps owning nc and st: Stop closes neither.
func Serve(nc *nats.Conn, st store.Store, cfg ServerConfig, log *zap.Logger) (*Server, error) {
	if nc == nil || st == nil {
		return nil, errors.New("remote store: Serve needs a connection and a store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		nc:   nc,
		st:   st,
		cfg:  cfg,
		log:  log.With(zap.String("prefix", cfg.Prefix)),
		busy: errorReply(CodeBusy, ErrBusy.Error()),
		work: make(chan job, cfg.Backlog),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for range cfg.Workers {
		s.workers.Go(s.worker)
	}
	sub, err := nc.QueueSubscribe(cfg.Prefix+".>", cfg.QueueGroup, s.dispatch)
	if err != nil {
		close(s.work)
		s.workers.Wait()
		s.cancel()
		return nil, fmt.Errorf("remote store: subscribe %s.>: %w", cfg.Prefix, err)
	}
	s.sub = sub
	s.subClosed = sub.StatusChanged(nats.SubscriptionClosed)
	// Have the subscription in place at the server before returning, so that a request made
	// after Serve finds it. A connection that is down gets it when it reconnects.
	if err := nc.Flush(); err != nil {
		s.log.Warn("store server: subscription not confirmed yet", zap.Error(err))
	}
	s.log.Info("store server started", zap.String("queue_group", cfg.QueueGroup),
		zap.Int("workers", cfg.Workers), zap.Int("backlog", cfg.Backlog))
	return s, nil
}

// dispatch is the subscription's callback. NATS runs it for one message at a time, so it only
// hands the request to the pool, or answers at once when it cannot.
func (s *Server) dispatch(msg *nats.Msg) {
	if msg.Reply == "" {
		s.log.Debug("store request without a reply subject dropped", zap.String("subject", msg.Subject))
		return
	}
	name := strings.TrimPrefix(msg.Subject, s.cfg.Prefix+".")
	m, ok := methodsByName[name]
	if !ok {
		s.log.Debug("store request for an unknown method", zap.String("subject", msg.Subject))
		s.respond(msg, errorReply(CodeBadRequest, fmt.Sprintf("unknown method %q", name)))
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.stopping {
		select {
		case s.work <- job{msg: msg, method: m, received: time.Now()}:
			return
		default:
		}
	}
	s.log.Debug("store server busy: request turned away", zap.Stringer("method", m))
	s.respond(msg, s.busy)
}

func (s *Server) worker() {
	for j := range s.work {
		s.handle(j)
	}
}

func (s *Server) handle(j job) {
	req, err := decodeRequest(j.method, j.msg.Data)
	if err != nil {
		s.log.Debug("bad store request", zap.Stringer("method", j.method), zap.Int("bytes", len(j.msg.Data)), zap.Error(err))
		s.respond(j.msg, errorReply(CodeBadRequest, "decode request: "+err.Error()))
		return
	}
	timeout := req.timeout
	if timeout == 0 {
		timeout = s.cfg.DefaultTimeout
	}
	deadline := j.received.Add(timeout)
	if !time.Now().Before(deadline) {
		// Its caller has stopped waiting: running it now would only add load.
		s.log.Debug("store request expired waiting for a worker", zap.Stringer("method", j.method),
			zap.Duration("waited", time.Since(j.received)))
		return
	}
	ctx, cancel := context.WithDeadline(s.ctx, deadline)
	defer cancel()
	start := time.Now()
	resp, err := s.exec(ctx, j.method, &req)
	if err != nil {
		resp = response{code: codeOf(err), message: err.Error()}
		switch resp.code {
		case CodeInternal:
			s.log.Warn("store request failed", zap.Stringer("method", j.method), zap.Duration("took", time.Since(start)), zap.Error(err))
		case CodeTimeout:
			s.log.Debug("store request timed out", zap.Stringer("method", j.method), zap.Duration("took", time.Since(start)), zap.Error(err))
		}
	}
	data := encodeResponse(j.method, &resp)
	if limit := s.nc.MaxPayload(); limit > 0 && int64(len(data)) > limit {
		s.log.Warn("store reply exceeds the max payload", zap.Stringer("method", j.method), zap.Int("bytes", len(data)), zap.Int64("max_payload", limit))
		data = errorReply(CodeTooLarge, fmt.Sprintf("reply of %d bytes exceeds the NATS max payload of %d", len(data), limit))
	}
	s.respond(j.msg, data)
}

func (s *Server) respond(msg *nats.Msg, data []byte) {
	if err := msg.Respond(data); err != nil {
		s.log.Warn("store reply not sent", zap.String("subject", msg.Subject), zap.Error(err))
	}
}

// exec runs one request on the store.
func (s *Server) exec(ctx context.Context, m method, r *request) (resp response, err error) {
	st := s.st
	switch m {
	case mCreateUser:
		err = st.CreateUser(ctx, r.user)
	case mUserByID:
		resp.user, err = st.UserByID(ctx, r.a)
	case mUserByHandle:
		resp.user, err = st.UserByHandle(ctx, r.a)
	case mUpdateProfile:
		err = st.UpdateProfile(ctx, r.a, r.b)
	case mDeleteUser:
		err = st.DeleteUser(ctx, r.a)
	case mPutConversation:
		err = st.PutConversation(ctx, r.conv)
	case mConversation:
		resp.conv, err = st.Conversation(ctx, r.a)
	case mPutMember:
		err = st.PutMember(ctx, r.mem)
	case mMember:
		resp.mem, err = st.Member(ctx, r.a, r.b)
	case mMembers:
		resp.mems, err = st.Members(ctx, r.a)
	case mMembershipsOf:
		resp.mems, err = st.MembershipsOf(ctx, r.a)
	case mInsertMessage:
		resp.msg, resp.inserted, err = st.InsertMessage(ctx, r.msg)
	case mMessageByClientID:
		resp.msg, err = st.MessageByClientID(ctx, r.a, r.b)
	case mMessageByID:
		resp.msg, err = st.MessageByID(ctx, r.a, r.b)
	case mReviseMessage:
		rv, ok := st.(store.Reviser)
		if !ok {
			err = errNoRevisions
			break
		}
		resp.msg, err = rv.ReviseMessage(ctx, r.a, r.seq, r.rev)
	case mMessages:
		var msgs []store.Message
		msgs, err = st.Messages(ctx, r.a, r.page)
		resp.msgs, resp.truncated = fit(msgs, r.page.Forward(), s.replyBudget())
	case mPutDevice:
		err = st.PutDevice(ctx, r.dev)
	case mDevices:
		resp.devs, err = st.Devices(ctx, r.a)
	case mDeleteDevice:
		err = st.DeleteDevice(ctx, r.a, r.b)
	case mPutPushToken:
		err = st.PutPushToken(ctx, r.token)
	case mDeletePushToken:
		err = st.DeletePushToken(ctx, r.a, r.b)
	case mPushTokens:
		resp.tokens, err = st.PushTokens(ctx, r.a)
	case mAdvanceWatermark:
		resp.wm, err = st.AdvanceWatermark(ctx, r.wm)
	case mWatermark:
		resp.wm, err = st.Watermark(ctx, r.a, r.b)
	case mWatermarks:
		resp.wms, err = st.Watermarks(ctx, r.a)
	case mCreateSession:
		err = st.CreateSession(ctx, r.sess)
	case mSession:
		resp.sess, err = st.Session(ctx, r.a)
	case mSessions:
		resp.sessions, err = st.Sessions(ctx, r.a)
	case mRotateSession:
		resp.sess, err = st.RotateSession(ctx, r.a, r.h1, r.h2, r.at)
	case mRevokeSession:
		resp.sess, err = st.RevokeSession(ctx, r.a, r.at)
	default:
		err = fmt.Errorf("method %d not served", m)
	}
	return resp, err
}

// replyBudget is the room for messages in one Messages reply.
func (s *Server) replyBudget() int {
	limit := int(s.nc.MaxPayload())
	if limit <= 0 { // not connected yet; NATS's default
		limit = 1 << 20
	}
	if s.cfg.MaxReplyBytes > 0 && s.cfg.MaxReplyBytes < limit {
		limit = s.cfg.MaxReplyBytes
	}
	return limit - replyOverhead
}

// fit returns the part of a page (newest first) that fits in budget bytes, and whether that is
// less than the page: the newest messages of a backward page, the oldest of a forward one, so
// that the client can ask for the rest with Before or After. The first message goes even when
// it alone is larger than budget.
func fit(msgs []store.Message, forward bool, budget int) ([]store.Message, bool) {
	used, n := 0, 0
	var s sizer
	for i := range msgs {
		j := i
		if forward {
			j = len(msgs) - 1 - i
		}
		s.n = 0
		messageFields(&s, &msgs[j])
		if n > 0 && used+s.n > budget {
			break
		}
		used += s.n
		n++
	}
	switch {
	case n == len(msgs):
		return msgs, false
	case forward:
		return msgs[len(msgs)-n:], true
	default:
		return msgs[:n], true
	}
}

// Stop stops taking requests and waits for the ones already taken (those the subscription
// had received and those queued or running) to be answered. When ctx ends first, the running
// requests' contexts are cancelled, and Stop still waits for their handlers to return, then
// reports ctx's error. Stop closes neither the connection nor the store; calling it again
// returns the first call's result.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	var err error
	// Drain removes the interest at once (new requests find no responder, and clients retry
	// them until a server is back) and still delivers what was already received.
	if derr := s.sub.Drain(); derr != nil {
		s.log.Debug("store server: drain subscription", zap.Error(derr)) // the connection is closed: nothing more comes
	} else {
		select {
		case <-s.subClosed:
		case <-ctx.Done():
			_ = s.sub.Unsubscribe()
			err = ctx.Err()
		}
	}
	s.mu.Lock()
	s.stopping = true
	close(s.work)
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.cancel()
		<-done
	}
	s.cancel()
	if err != nil {
		s.log.Warn("store server stopped before every request was answered", zap.Error(err))
		return fmt.Errorf("remote store: stop: %w", err)
	}
	s.log.Info("store server stopped")
	return nil
}
