package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// session is one authenticated socket of one device.
//
// Goroutines: the handler goroutine reads frames (run) and is the only one an idle socket has.
// The others exist only while they have work, so that an idle connection costs one goroutine
// stack, as a bare WebSocket server's does: writer runs while frames are queued and performs
// the close; the heartbeat timer's callback pings and waits for the pong; catchUp (when asked)
// replays what the device missed, writing to the socket itself. Each is counted in wg before it
// starts, under wmu (the writer: under the outbox's lock) and only while the session has not
// ended (the writer: or to close it), so run's final wg.Wait sees them all.
type session struct {
	g        *Gateway
	id       string
	userID   string
	deviceID string
	platform string
	login    string // the login session (auth) the socket's token was issued to: its revocation closes the socket
	conn     *websocket.Conn
	cork     *corkConn // conn's socket: the writer puts each batch on the wire in one write

	// expires is when the access token the socket connected with expires (told in welcome);
	// expiry closes the socket then, unless an auth frame moved it (handleAuth).
	expires time.Time
	expiry  *time.Timer

	ctx    context.Context // cancelled when the session ends
	cancel context.CancelFunc
	// window bounds this socket's sends waiting for JetStream's acknowledgement (see publish.go):
	// a client that pipelines more is not read until one is answered.
	window chan struct{}
	wg     sync.WaitGroup

	killOnce sync.Once
	kill     chan struct{}
	code     protocol.CloseCode
	reason   string

	out outbox // live events and the session's own answers, for the writer

	wmu       sync.Mutex
	ended     bool        // fail was called: no more goroutines start
	online    bool        // the online presence event was published; offline follows at the end
	heartbeat *time.Timer // fires ping every HeartbeatInterval

	mu       sync.Mutex
	live     liveGate          // which live events go to the socket, and when
	routeRev uint64            // revision of this session's route entry
	bucket   tokenBucket       // rate limit of client frames
	marks    map[string]uint64 // "read/<conv>", "delivered/<conv>" -> last watermark published (allocated on first use)
	typing   map[string]typingState
}

// logger is the session's logger, built when something is logged (rarely): a zap.Logger.With
// per session would cost every idle socket more than a kilobyte.
func (s *session) logger() *zap.Logger {
	return s.g.log.With(zap.String("user", s.userID), zap.String("device", s.deviceID), zap.String("session", s.id))
}

func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	addr, ok := g.admitUpgrade(w, r)
	if !ok {
		return
	}
	socket := false // the session, once it runs, gives the address's slot back instead
	defer func() {
		if !socket {
			g.addrs.release(addr)
		}
	}()
	if !g.checkOrigin(w, r) {
		return
	}
	claims, ok := g.authenticate(w, r)
	if !ok {
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
	var lines bool // several frames to a message, one per line
	switch q.Get(protocol.FramesParam) {
	case "":
	case protocol.FramesLines:
		lines = true
	default:
		httpError(w, http.StatusBadRequest, "invalid_request", "frames is lines (several frames to a message, one per line) or absent")
		return
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
	cw := &corkingWriter{ResponseWriter: w, writes: g.met.writes, lines: lines}
	conn, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
		// checkOrigin has applied natter's policy; the library's own check (Origin must match
		// Host unless listed) would refuse cross-origin pages the policy allows.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		g.conns.Done()
		return // Accept already answered the request
	}
	conn.SetReadLimit(protocol.HardFrameBytes)
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		g: g, id: ulid.Make().String(), userID: claims.UserID, login: claims.SessionID, expires: claims.Expires, deviceID: device, platform: platform, conn: conn, cork: cw.conn,
		ctx: ctx, cancel: cancel, window: make(chan struct{}, g.cfg.SocketPublishWindow), kill: make(chan struct{}),
		live:   newLiveGate(),
		bucket: tokenBucket{rate: g.cfg.FramesPerSecond, burst: float64(g.cfg.Burst), tokens: float64(g.cfg.Burst), last: time.Now()},
	}
	s.out.wg, s.out.limits = &s.wg, &g.outbox
	// A socket lives no longer than its access token, unless the client renews it with an auth
	// frame (or reconnects with a refreshed one), nor than its login session (hub.onRevoked
	// closes it when the session ends).
	s.expiry = time.AfterFunc(time.Until(claims.Expires), func() {
		s.fail(protocol.CloseUnauthorized, "access token expired; renew it with an auth frame, or refresh it and reconnect")
	})
	// The socket is hijacked: the session reads it on a goroutine of its own and this handler
	// returns, so that net/http's connection goroutine (whose stack the upgrade and the token check
	// grew) does not stay behind for every idle socket.
	socket = true
	go func() {
		defer g.conns.Done()
		defer g.addrs.release(addr)
		defer s.expiry.Stop()
		s.run(cursor)
	}()
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
	defer s.finish()
	// Welcome first, written before the hub knows the session: nothing may precede it.
	welcome, err := json.Marshal(protocol.Welcome{Type: protocol.TypeWelcome, Protocol: protocol.Version, UserID: s.userID,
		DeviceID: s.deviceID, SessionID: s.id, HeartbeatMS: g.cfg.HeartbeatInterval.Milliseconds(), Syncing: cursor != nil,
		ExpiresAt: s.expires.UnixMilli(), EditWindowMS: ceilMS(g.cfg.EditWindow)})
	if err != nil || s.writeNow(welcome) != nil {
		return
	}
	s.wmu.Lock()
	s.heartbeat = time.AfterFunc(g.cfg.HeartbeatInterval, s.ping)
	s.wmu.Unlock()
	old, revoked := g.hub.add(s)
	if old != nil {
		old.fail(protocol.CloseReplaced, "another connection of this device took over")
	}
	if revoked { // revoked between the token check and now
		s.fail(protocol.CloseSessionEnded, sessionEndedReason)
	}
	select {
	case <-g.stopping: // Stop's closeAll may have listed the sessions before this one joined
		s.fail(protocol.CloseShutdown, "server shutting down")
	default:
	}
	g.met.connections.Inc()
	defer g.met.connections.Dec()

	s.wg.Add(1)
	go s.start(cursor)
	s.readLoop()
}

// start registers the socket (route, presence, device), then catches it up. It runs beside the
// read loop, not before it, so that the read loop's goroutine — the one an idle socket keeps —
// never grows its stack for this work.
func (s *session) start(cursor *uint64) {
	defer s.wg.Done()
	g := s.g
	// The route must be visible to fanout before the head is read for catch-up: every event after
	// that head is then routed here live (fanout's route barrier, once the route has settled:
	// Config.BarrierWindow), and every event up to it is replayed. That is what makes the
	// hand-over gap-free. Frames the read loop handles meanwhile need nothing of this: what they
	// cause is either at or below that head or routed here.
	if err := s.refreshRoute(s.ctx); err != nil {
		s.fail(protocol.CloseInternal, "could not register the connection; reconnect")
		return
	}
	routed := time.Now()
	s.announcePresence(streams.Online)
	s.wmu.Lock()
	s.online = true
	s.wmu.Unlock()
	if err := g.recordDevice(s.ctx, s.userID, s.deviceID, s.platform); err != nil {
		s.logger().Warn("record device", zap.Error(err))
	}
	if streams.Settle(s.ctx, routed, g.cfg.BarrierWindow) != nil {
		return // the session ended
	}
	if err := s.catchUp(cursor); err != nil && !errors.Is(err, errSessionEnded) && s.ctx.Err() == nil {
		s.logger().Error("catch-up failed", zap.Error(err))
		s.fail(protocol.CloseInternal, "catch-up failed; reconnect and sync")
	}
}

// finish ends the session: close the socket (if nothing closed it yet), wait for the session's
// goroutines, unregister, and drop the route unless a newer connection owns it.
func (s *session) finish() {
	s.fail(protocol.CloseInternal, "connection ended")
	s.wg.Wait()
	s.cancel()
	s.g.hub.remove(s)
	if s.online { // no goroutine but this one is left: no lock needed
		s.announcePresence(streams.Offline)
	}
	s.mu.Lock()
	rev := s.routeRev
	s.mu.Unlock()
	if rev != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), s.g.cfg.PublishTimeout)
		if err := s.g.routes.Delete(ctx, s.userID, s.deviceID, rev); err != nil {
			s.logger().Warn("remove route", zap.Error(err))
		}
		cancel()
	}
}

// fail closes the session with code; the first call wins. The writer performs the close (it is
// started for that if it is not running).
func (s *session) fail(code protocol.CloseCode, reason string) {
	s.killOnce.Do(func() {
		s.code, s.reason = code, reason
		close(s.kill)
		s.wmu.Lock()
		s.ended = true
		if s.heartbeat != nil {
			s.heartbeat.Stop()
		}
		s.wmu.Unlock()
		if s.out.close() {
			go s.writer()
		}
	})
}

func (s *session) refreshRoute(ctx context.Context) error {
	rev, err := s.g.routes.Put(ctx, s.userID, s.deviceID, s.id)
	if err != nil {
		s.logger().Warn("put route", zap.Error(err))
		return err
	}
	s.mu.Lock()
	s.routeRev = rev
	s.mu.Unlock()
	return nil
}

// writer writes the outbox's frames, in order, and exits when it is empty; enqueue starts it
// again. A batch that comes within WriteInterval of the last write waits out the rest of it,
// gathering what else comes. Once the session has ended it closes the socket instead.
func (s *session) writer() {
	defer s.wg.Done()
	var pause *time.Timer // made at the first pause, reused for the session's later ones
	patient, now := true, time.Now()
	for {
		t := s.out.take(patient, now)
		switch {
		case t.close:
			s.closeConn(t.broken)
			return
		case t.idle:
			return
		case t.wait > 0:
			pause = s.pause(pause, t.wait) // what comes meanwhile joins the next batch
			patient, now = false, time.Now()
			continue
		}
		s.cork.cork()
		for _, frame := range t.frames {
			select {
			case <-s.kill:
			default:
				// Held back in memory, so no timeout: the one write of uncork has it. On failure the
				// session ends; the next turn closes the socket.
				_ = s.write(frame)
			}
		}
		err := s.cork.uncork(s.g.cfg.WriteTimeout)
		patient, now = true, time.Now() // the next take comes at once: this is its now too
		s.out.done(t.frames, now)
		if err != nil {
			s.writeFailed()
		}
	}
}

// pause waits d, or less if the session ends meanwhile, on timer t (nil: a new one), which it
// returns for the next pause.
func (s *session) pause(t *time.Timer, d time.Duration) *time.Timer {
	if t == nil {
		t = time.NewTimer(d)
	} else {
		t.Reset(d)
	}
	select {
	case <-t.C:
	case <-s.kill:
		t.Stop()
	}
	return t
}

// write writes one frame (held back while the socket is corked). On failure it ends the session;
// the writer (started by fail if none is running) then closes the socket without the close
// handshake.
func (s *session) write(frame []byte) error {
	if err := s.cork.writeText(frame); err != nil {
		s.writeFailed()
		return err
	}
	s.g.met.framesOut.Inc()
	return nil
}

// writeFailed ends the session after a failed write; the socket closes without the handshake.
func (s *session) writeFailed() {
	s.out.breakOff()
	s.fail(protocol.CloseInternal, "write failed")
}

// writeNow writes a frame from the goroutine that calls it (welcome), waiting for the socket.
func (s *session) writeNow(frame []byte) error {
	select {
	case <-s.kill:
		return errSessionEnded
	default:
	}
	s.cork.cork() // the uncork's one write has the timeout
	err := s.write(frame)
	if uerr := s.cork.uncork(s.g.cfg.WriteTimeout); err == nil && uerr != nil {
		s.writeFailed()
		err = uerr
	}
	if err != nil {
		return errSessionEnded
	}
	return nil
}

// closeConn closes the socket with the session's close code.
func (s *session) closeConn(broken bool) {
	if s.code != protocol.CloseCode(websocket.StatusNormalClosure) { // the client's own close is not counted
		s.g.met.closes.WithLabelValues(strconv.Itoa(int(s.code))).Inc()
	}
	s.cancel()
	s.cork.closeFrames()
	if broken || s.code == protocol.CloseHeartbeatTimeout {
		_ = s.conn.CloseNow() // the peer is not answering; do not wait for its close frame
	} else {
		_ = s.conn.Close(websocket.StatusCode(s.code), s.reason)
	}
}

// ping runs on the heartbeat timer: it pings, waits for the pong, and re-arms the timer. No
// goroutine waits between heartbeats.
func (s *session) ping() {
	s.wmu.Lock()
	if s.ended {
		s.wmu.Unlock()
		return
	}
	s.wg.Add(1)
	s.wmu.Unlock()
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.HeartbeatTimeout)
	err := s.conn.Ping(ctx)
	cancel()
	if err != nil {
		s.fail(protocol.CloseHeartbeatTimeout, "no pong within the heartbeat timeout")
		return
	}
	s.wmu.Lock()
	if !s.ended {
		s.heartbeat.Reset(s.g.cfg.HeartbeatInterval)
	}
	s.wmu.Unlock()
}

// readLoop reads frames until the socket closes. Bad frames get an error frame; the connection
// stays usable.
func (s *session) readLoop() {
	for {
		typ, rd, err := s.conn.Reader(context.Background())
		if err != nil {
			if s.ctx.Err() == nil && websocket.CloseStatus(err) == -1 && !errors.Is(err, io.EOF) {
				s.logger().Debug("read", zap.Error(err))
			}
			s.fail(protocol.CloseCode(websocket.StatusNormalClosure), "closed by the client")
			return
		}
		buf := frameBuffers.get()
		raw, err := readFrame(rd, *buf, protocol.MaxFrameBytes)
		f, perr, ok := s.decode(typ, rd, raw, err)
		*buf = raw
		frameBuffers.put(buf)
		if !ok {
			return
		}
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
		case protocol.TypeEdit, protocol.TypeDelete:
			s.handleRevision(f)
		case protocol.TypeRead, protocol.TypeDelivered:
			s.handleReceipt(f)
		case protocol.TypeTyping:
			s.handleTyping(f)
		case protocol.TypePresence:
			s.handlePresence(f)
		case protocol.TypeAuth:
			s.handleAuth(f)
		}
	}
}

// decode checks and decodes the frame read into raw (err: reading it failed; rd: the rest of a
// frame over the limit). ok false: the session failed. A frame refused (too large, binary, over
// the rate, malformed) comes back as perr, with a zero frame, for the caller to answer.
func (s *session) decode(typ websocket.MessageType, rd io.Reader, raw []byte, err error) (f protocol.ClientFrame, perr *protocol.Error, ok bool) {
	if err != nil {
		s.fail(protocol.ClosePolicy, "frame could not be read")
		return f, nil, false
	}
	if len(raw) > protocol.MaxFrameBytes {
		if _, err := io.Copy(io.Discard, rd); err != nil {
			s.fail(protocol.ClosePolicy, "frame over the hard limit")
			return f, nil, false
		}
		return f, protocol.Errorf(protocol.CodeFrameTooLarge, "frame is over %d bytes", protocol.MaxFrameBytes), true
	}
	if typ != websocket.MessageText {
		return f, protocol.Errorf(protocol.CodeInvalidFrame, "only text frames are accepted"), true
	}
	if !s.allow() {
		return f, protocol.Errorf(protocol.CodeRateLimited, "more than %g frames per second; slow down", s.g.cfg.FramesPerSecond), true
	}
	f, perr = protocol.Decode(raw)
	return f, perr, true
}

func (s *session) reject(e *protocol.Error) {
	s.g.met.framesIn.WithLabelValues(string(e.Code)).Inc()
	s.send(e)
}

// send queues a frame written by this session itself (welcome, acks, errors).
func (s *session) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.logger().Error("encode frame", zap.Error(err))
		return
	}
	s.enqueue(b)
}

// sendAck queues an ack, encoded without reflection: one for every send accepted.
func (s *session) sendAck(a protocol.Ack) {
	s.enqueue(a.AppendJSON(make([]byte, 0, 256))) // an ack with ids of 26 bytes and a ref: about 220
}

// enqueue queues frame for the writer; it never blocks. A socket whose queue is past its
// bounds (see outbox.push) is closed as slow.
func (s *session) enqueue(frame []byte) {
	start, full := s.out.push(frame)
	if full {
		s.fail(protocol.CloseSlowConsumer, "send queue full; reconnect and sync")
		return
	}
	if start {
		go s.writer()
	}
}

// errSessionEnded: the session closed while something was still writing to it.
var errSessionEnded = errors.New("session ended")

// deliver hands the session a live event (see liveGate).
func (s *session) deliver(conv string, seq uint64, frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	send, full := s.live.offer(conv, seq, frame)
	if full {
		s.fail(protocol.CloseSlowConsumer, "too many events during catch-up; reconnect and sync")
		return
	}
	if send {
		s.enqueue(frame)
	}
}

// caughtUpTo reports whether this socket is, or will be when its catch-up ends, past seq (see
// liveGate.caughtUpTo).
func (s *session) caughtUpTo(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live.caughtUpTo(seq)
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

// ceilMS is d in whole milliseconds, rounded up: a window under a millisecond is not "0: no limit".
func ceilMS(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
