package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// maxPending bounds the live frames held back while a session catches up.
const maxPending = 10_000

// session is one authenticated socket of one device.
//
// Goroutines: the handler goroutine reads frames (run); writer writes queued frames and performs
// the close; pinger checks liveness; catchUp (when asked) replays what the device missed. All stop
// when kill is closed; run waits for them before it returns.
type session struct {
	g        *Gateway
	id       string
	userID   string
	deviceID string
	platform string
	conn     *websocket.Conn
	log      *zap.Logger

	ctx    context.Context // cancelled when the session ends
	cancel context.CancelFunc
	out    chan []byte // bounded: live events and the session's own answers; never waited on
	// catchup hands the writer replayed events one at a time (unbuffered): catch-up waits for the
	// socket instead of filling out, so answers to the client's frames always find room.
	catchup chan []byte
	wg      sync.WaitGroup

	killOnce sync.Once
	kill     chan struct{}
	code     protocol.CloseCode
	reason   string

	mu       sync.Mutex
	syncing  bool              // catch-up running: live frames wait in pending
	pending  []pendingFrame    // live frames held back during catch-up
	lastSeq  map[string]uint64 // conversation -> highest seq sent to this socket
	routeRev uint64            // revision of this session's route entry
	bucket   tokenBucket       // rate limit of client frames
	marks    map[string]uint64 // "read/<conv>", "delivered/<conv>" -> last watermark published
	typing   map[string]typingState
}

type pendingFrame struct {
	conv  string
	seq   uint64
	frame []byte
}

func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(cred)
	}
	claims, err := g.deps.Tokens.Verify(token)
	if err != nil {
		httpError(w, http.StatusUnauthorized, "unauthorized", "a valid access token is required (Authorization: Bearer or ?token=)")
		return
	}
	q := r.URL.Query()
	device := q.Get("device")
	if device == "" {
		device = "d" + ulid.Make().String()
	} else if !streams.ValidToken(device) {
		httpError(w, http.StatusBadRequest, "invalid_request", "device must be 1-64 characters of [A-Za-z0-9_-]")
		return
	}
	var cursor *uint64
	if c := q.Get("cursor"); c != "" {
		v, err := strconv.ParseUint(c, 10, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, "invalid_request", "cursor must be a non-negative integer")
			return
		}
		cursor = &v
	}
	platform := q.Get("platform")
	if len(platform) > 32 {
		httpError(w, http.StatusBadRequest, "invalid_request", "platform is at most 32 bytes")
		return
	}
	if !g.track() {
		httpError(w, http.StatusServiceUnavailable, "unavailable", "gateway is shutting down; use discovery to find another")
		return
	}
	defer g.conns.Done()
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:     g.cfg.OriginPatterns,
		InsecureSkipVerify: len(g.cfg.OriginPatterns) == 0,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept already answered the request
	}
	conn.SetReadLimit(protocol.HardFrameBytes)
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		g: g, id: ulid.Make().String(), userID: claims.UserID, deviceID: device, platform: platform, conn: conn,
		ctx: ctx, cancel: cancel, out: make(chan []byte, g.cfg.SendQueue), catchup: make(chan []byte), kill: make(chan struct{}),
		syncing: true, lastSeq: map[string]uint64{}, marks: map[string]uint64{}, typing: map[string]typingState{},
		bucket: tokenBucket{rate: g.cfg.FramesPerSecond, burst: float64(g.cfg.Burst), tokens: float64(g.cfg.Burst), last: time.Now()},
	}
	s.log = g.log.With(zap.String("user", s.userID), zap.String("device", s.deviceID), zap.String("session", s.id))
	// A session lives no longer than its token: the client logs in again and reconnects.
	expiry := time.AfterFunc(time.Until(claims.Expires), func() {
		s.fail(protocol.CloseUnauthorized, "access token expired; log in again and reconnect")
	})
	defer expiry.Stop()
	s.run(cursor)
}

// track counts a new connection unless the gateway is stopping.
func (g *Gateway) track() bool {
	g.hub.mu.Lock()
	defer g.hub.mu.Unlock()
	select {
	case <-g.stopping:
		return false
	default:
		g.conns.Add(1)
		return true
	}
}

func (s *session) run(cursor *uint64) {
	g := s.g
	// Welcome first: nothing the hub routes here may precede it.
	s.send(protocol.Welcome{Type: protocol.TypeWelcome, Protocol: protocol.Version, UserID: s.userID, DeviceID: s.deviceID,
		SessionID: s.id, HeartbeatMS: g.cfg.HeartbeatInterval.Milliseconds(), Syncing: cursor != nil})
	if old := g.hub.add(s); old != nil {
		old.fail(protocol.CloseReplaced, "another connection of this device took over")
	}
	g.met.connections.Inc()
	defer g.met.connections.Dec()

	s.wg.Add(2)
	go s.writer()
	go s.pinger()
	defer s.finish()

	// The route must be visible to fanout before the head is read for catch-up: every event after
	// that head is then routed here live (fanout's route barrier), and every event up to it is
	// replayed. That is what makes the hand-over gap-free.
	if err := s.refreshRoute(s.ctx); err != nil {
		s.fail(protocol.CloseInternal, "could not register the connection; reconnect")
		return
	}
	s.announcePresence(streams.Online)
	defer s.announcePresence(streams.Offline)
	if err := g.deps.Store.PutDevice(s.ctx, store.Device{UserID: s.userID, DeviceID: s.deviceID, Platform: s.platform,
		CreatedAt: time.Now().UTC(), LastSeen: time.Now().UTC()}); err != nil {
		s.log.Warn("record device", zap.Error(err))
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.catchUp(cursor); err != nil && !errors.Is(err, errSessionEnded) && s.ctx.Err() == nil {
			s.log.Error("catch-up failed", zap.Error(err))
			s.fail(protocol.CloseInternal, "catch-up failed; reconnect and sync")
		}
	}()
	s.readLoop()
}

// finish ends the session: close the socket (if nothing closed it yet), wait for the session's
// goroutines, unregister, and drop the route unless a newer connection owns it.
func (s *session) finish() {
	s.fail(protocol.CloseInternal, "connection ended")
	s.wg.Wait()
	s.cancel()
	s.g.hub.remove(s)
	s.mu.Lock()
	rev := s.routeRev
	s.mu.Unlock()
	if rev != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), s.g.cfg.PublishTimeout)
		if err := s.g.routes.Delete(ctx, s.userID, s.deviceID, rev); err != nil {
			s.log.Warn("remove route", zap.Error(err))
		}
		cancel()
	}
}

// fail closes the session with code; the first call wins.
func (s *session) fail(code protocol.CloseCode, reason string) {
	s.killOnce.Do(func() {
		s.code, s.reason = code, reason
		close(s.kill)
	})
}

func (s *session) refreshRoute(ctx context.Context) error {
	rev, err := s.g.routes.Put(ctx, s.userID, s.deviceID, s.id)
	if err != nil {
		s.log.Warn("put route", zap.Error(err))
		return err
	}
	s.mu.Lock()
	s.routeRev = rev
	s.mu.Unlock()
	return nil
}

func (s *session) writer() {
	defer s.wg.Done()
	for {
		var frame []byte
		select {
		case frame = <-s.out:
		case frame = <-s.catchup:
		case <-s.kill:
			if s.code != protocol.CloseCode(websocket.StatusNormalClosure) { // the client's own close is not counted
				s.g.met.closes.WithLabelValues(strconv.Itoa(int(s.code))).Inc()
			}
			s.cancel()
			if s.code == protocol.CloseHeartbeatTimeout {
				_ = s.conn.CloseNow() // the peer is not answering; do not wait for its close frame
			} else {
				_ = s.conn.Close(websocket.StatusCode(s.code), s.reason)
			}
			return
		}
		{
			ctx, cancel := context.WithTimeout(context.Background(), s.g.cfg.WriteTimeout)
			err := s.conn.Write(ctx, websocket.MessageText, frame)
			cancel()
			if err != nil {
				s.fail(protocol.CloseInternal, "write failed")
				_ = s.conn.CloseNow()
				return
			}
			s.g.met.framesOut.Inc()
		}
	}
}

func (s *session) pinger() {
	defer s.wg.Done()
	t := time.NewTicker(s.g.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-s.kill:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.HeartbeatTimeout)
			err := s.conn.Ping(ctx)
			cancel()
			if err != nil {
				s.fail(protocol.CloseHeartbeatTimeout, "no pong within the heartbeat timeout")
				return
			}
		}
	}
}

// readLoop reads frames until the socket closes. Bad frames get an error frame; the connection
// stays usable.
func (s *session) readLoop() {
	for {
		typ, rd, err := s.conn.Reader(context.Background())
		if err != nil {
			if s.ctx.Err() == nil && websocket.CloseStatus(err) == -1 && !errors.Is(err, io.EOF) {
				s.log.Debug("read", zap.Error(err))
			}
			s.fail(protocol.CloseCode(websocket.StatusNormalClosure), "closed by the client")
			return
		}
		raw, err := io.ReadAll(io.LimitReader(rd, protocol.MaxFrameBytes+1))
		if err != nil {
			s.fail(protocol.ClosePolicy, "frame could not be read")
			return
		}
		if len(raw) > protocol.MaxFrameBytes {
			if _, err := io.Copy(io.Discard, rd); err != nil {
				s.fail(protocol.ClosePolicy, "frame over the hard limit")
				return
			}
			s.reject(protocol.Errorf(protocol.CodeFrameTooLarge, "frame is over %d bytes", protocol.MaxFrameBytes))
			continue
		}
		if typ != websocket.MessageText {
			s.reject(protocol.Errorf(protocol.CodeInvalidFrame, "only text frames are accepted"))
			continue
		}
		if !s.allow() {
			s.reject(protocol.Errorf(protocol.CodeRateLimited, "more than %g frames per second; slow down", s.g.cfg.FramesPerSecond))
			continue
		}
		f, perr := protocol.Decode(raw)
		if perr != nil {
			s.reject(perr)
			continue
		}
		s.g.met.framesIn.WithLabelValues(f.Type).Inc()
		switch f.Type {
		case protocol.TypePing:
			s.send(protocol.Pong{Type: protocol.TypePong, Ref: f.ID})
		case protocol.TypeSend:
			s.handleSend(f)
		case protocol.TypeRead, protocol.TypeDelivered:
			s.handleReceipt(f)
		case protocol.TypeTyping:
			s.handleTyping(f)
		case protocol.TypePresence:
			s.handlePresence(f)
		}
	}
}

func (s *session) reject(e *protocol.Error) {
	s.g.met.framesIn.WithLabelValues(string(e.Code)).Inc()
	s.send(e)
}

// send queues a frame written by this session itself (welcome, acks, errors).
func (s *session) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode frame", zap.Error(err))
		return
	}
	s.enqueue(b)
}

// enqueue never blocks: a full queue means the client cannot keep up, and it is closed.
func (s *session) enqueue(frame []byte) {
	select {
	case s.out <- frame:
	default:
		s.fail(protocol.CloseSlowConsumer, "send queue full; reconnect and sync")
	}
}

// errSessionEnded: the session closed while something was still writing to it.
var errSessionEnded = errors.New("session ended")

// enqueueWait blocks until the writer takes the frame (catch-up paces itself to the socket).
func (s *session) enqueueWait(frame []byte) error {
	select {
	case s.catchup <- frame:
		return nil
	case <-s.kill:
		return errSessionEnded
	}
}

// deliver hands the session a live event. While catching up it is held back; afterwards it is
// queued unless this socket already has it (a redelivery).
func (s *session) deliver(conv string, seq uint64, frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.syncing {
		if len(s.pending) >= maxPending {
			s.fail(protocol.CloseSlowConsumer, "too many events during catch-up; reconnect and sync")
			return
		}
		s.pending = append(s.pending, pendingFrame{conv, seq, frame})
		return
	}
	if seq <= s.lastSeq[conv] {
		return
	}
	s.lastSeq[conv] = seq
	s.enqueue(frame)
}

func (s *session) allow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bucket.take(time.Now())
}

// tokenBucket is a plain token bucket; the caller serialises access.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func httpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
