package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// engine drives the simulated users against one natter.
type engine struct {
	cfg   Config
	t     *target
	log   *zap.Logger
	epoch time.Time
	text  string
	hc    *http.Client
	tag   string // random, lower case: makes this run's handles unique

	users   []user
	clients []*client // user-major: clients[u*Devices+d]
	readers sync.WaitGroup

	phase     atomic.Uint32
	measuring atomic.Bool
	timeline  atomic.Pointer[timeline]
}

// tickSlot is the resolution of a phase's timeline.
const tickSlot = 100 * time.Millisecond

// timeline counts acks and deliveries, and their worst latency, per tickSlot of the measured
// window: it shows stalls that a whole-phase percentile only hints at.
type timeline struct {
	start time.Duration // engine time of the window's start
	slots []tlSlot
}

type tlSlot struct {
	acked, delivered   atomic.Uint64
	maxAck, maxDeliver atomic.Int64
}

func (e *engine) tick(now time.Duration, ack bool, lat time.Duration) {
	tl := e.timeline.Load()
	if tl == nil {
		return
	}
	i := int((now - tl.start) / tickSlot)
	if i < 0 || i >= len(tl.slots) {
		return
	}
	s := &tl.slots[i]
	n, m := &s.delivered, &s.maxDeliver
	if ack {
		n, m = &s.acked, &s.maxAck
	}
	n.Add(1)
	for {
		old := m.Load()
		if int64(lat) <= old || m.CompareAndSwap(old, int64(lat)) {
			break
		}
	}
}

func (tl *timeline) ticks() []Tick {
	out := make([]Tick, len(tl.slots))
	for i := range tl.slots {
		s := &tl.slots[i]
		out[i] = Tick{AtMs: i * int(tickSlot/time.Millisecond), Acked: s.acked.Load(), Delivered: s.delivered.Load(),
			MaxAckMs: float64(s.maxAck.Load()) / 1e6, MaxDeliverMs: float64(s.maxDeliver.Load()) / 1e6}
	}
	return out
}

func newEngine(cfg Config, t *target, log *zap.Logger) *engine {
	n, _ := rand.Int(rand.Reader, big.NewInt(36*36*36*36*36))
	return &engine{cfg: cfg, t: t, log: log, epoch: time.Now(), text: strings.Repeat("x", cfg.MsgSize),
		hc: wsHTTPClient(), tag: fmt.Sprintf("%05s", n.Text(36))}
}

func (e *engine) now() time.Duration { return time.Since(e.epoch) }

// signup creates n users, a few at a time (bcrypt makes sign-up deliberately slow).
func (e *engine) signup(ctx context.Context, n int) error {
	e.users = make([]user, n)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			u, err := e.t.signup(ctx, fmt.Sprintf("b%s_%d", e.tag, i))
			e.users[i] = u
			return err
		})
	}
	return g.Wait()
}

// signupIdle creates n more users for idle connections and returns their tokens.
func (e *engine) signupIdle(ctx context.Context, n int) ([]string, error) {
	tokens := make([]string, n)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			u, err := e.t.signup(ctx, fmt.Sprintf("i%s_%d", e.tag, i))
			tokens[i] = u.Token
			return err
		})
	}
	return tokens, g.Wait()
}

// wsURL is the socket URL of one device of user u.
func (e *engine) wsURL(u user, device string) string {
	sep := "?"
	if strings.Contains(e.t.wsURL, "?") {
		sep = "&"
	}
	return e.t.wsURL + sep + "token=" + url.QueryEscape(u.Token) + "&device=" + device
}

// connect opens every device of every user and waits until each has caught up (synced).
func (e *engine) connect(ctx context.Context) error {
	devs := e.cfg.Devices
	e.clients = make([]*client, len(e.users)*devs)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range e.clients {
		g.Go(func() error {
			u := i / devs
			ws, err := dialWS(gctx, e.hc, e.wsURL(e.users[u], fmt.Sprintf("bench%d", i%devs)))
			if err != nil {
				return fmt.Errorf("connect user %d device %d: %w", u, i%devs, err)
			}
			c := &client{e: e, idx: i, user: u, device: i % devs, ws: ws, synced: make(chan struct{}), pipe: newPipe()}
			e.clients[i] = c
			goClient(&e.readers, c.read)
			select {
			case <-c.synced:
				return nil
			case <-c.done:
				return fmt.Errorf("user %d device %d closed before it synced: %w", u, i%devs, c.closeErr)
			case <-time.After(30 * time.Second):
				return fmt.Errorf("user %d device %d: no synced frame within 30s", u, i%devs)
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	}
	return g.Wait()
}

// close closes every socket and waits for the readers.
func (e *engine) close() {
	for _, c := range e.clients {
		if c != nil {
			_ = c.ws.CloseNow()
		}
	}
	e.readers.Wait()
	e.hc.CloseIdleConnections()
}

// alive counts the open connections.
func (e *engine) alive() int {
	n := 0
	for _, c := range e.clients {
		if c != nil && c.alive() {
			n++
		}
	}
	return n
}

// plan is one phase's traffic: who sends into which conversation.
type plan struct {
	name     string
	scenario string
	mode     string
	rate     float64            // paced: messages/s in total
	senders  map[*client]string // sender -> conversation
	convs    int
	members  int // members per conversation
}

// probe makes every sender's conversation usable: one send each, retried until acked (a group's
// membership may take a moment to reach the store), so phases do not start with errors.
func (e *engine) probe(ctx context.Context, senders map[*client]string) error {
	id := e.phase.Add(1)
	pending := map[*client]*clientStats{}
	seen := map[string]bool{}
	for c, conv := range senders {
		if seen[conv] {
			continue
		}
		seen[conv] = true
		st := &clientStats{phase: id, errs: map[string]uint64{}}
		c.mu.Lock()
		c.st, c.window = st, make(chan struct{}, 1024)
		c.mu.Unlock()
		c.prepare(conv, "probe")
		pending[c] = st
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d conversations still refuse sends after 30s", len(pending))
		}
		for c, st := range pending {
			c.mu.Lock()
			acked, win := st.acked, c.window
			c.mu.Unlock()
			if acked > 0 {
				delete(pending, c)
				continue
			}
			if !c.alive() {
				return fmt.Errorf("a connection closed while probing: %w", c.closeErr)
			}
			if len(win) == 0 {
				win <- struct{}{}
				if err := c.send(ctx, id, st); err != nil {
					return fmt.Errorf("probe send: %w", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// run executes one phase: warm up, measure for Duration, stop sending, settle.
func (e *engine) run(ctx context.Context, p plan) (*LoadResult, error) {
	cfg := e.cfg
	id := e.phase.Add(1)
	stats := make([]*clientStats, len(e.clients))
	for i, c := range e.clients {
		st := &clientStats{phase: id, errs: map[string]uint64{}}
		stats[i] = st
		c.mu.Lock()
		c.st, c.window = st, nil
		c.mu.Unlock()
	}
	sendCtx, cancelSends := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+cfg.Settle)
	defer cancelSends()
	stop := make(chan struct{})
	var senders sync.WaitGroup
	startSenders(sendCtx, p.senders, p.mode, p.rate, cfg.Window, e.text, id, stats, stop, &senders)

	res := &LoadResult{Name: p.name, Scenario: p.scenario, Mode: p.mode, TargetRate: p.rate, Conversations: p.convs,
		Members: p.members, Devices: cfg.Devices, Senders: len(p.senders), Connections: len(e.clients), MsgSize: cfg.MsgSize}
	if p.mode == ModeFlat {
		res.Window = cfg.Window
	}
	sleep(ctx, cfg.Warmup)
	m0 := e.t.metrics(ctx)
	cpu0, cpuErr := e.t.cpu.read()
	cont := startContention(e.t.cpu)
	t0 := time.Now()
	tl := &timeline{start: e.now(), slots: make([]tlSlot, int(cfg.Duration/tickSlot)+1)}
	e.timeline.Store(tl)
	e.measuring.Store(true)
	sleep(ctx, cfg.Duration)
	e.measuring.Store(false)
	e.timeline.Store(nil)
	res.Timeline = tl.ticks()
	elapsed := time.Since(t0)
	cpu1, cpuErr1 := e.t.cpu.read()
	res.OtherCores = cont.otherCores(elapsed)
	m1 := e.t.metrics(ctx)
	close(stop)
	senders.Wait()
	if m0 != nil && m1 != nil {
		res.Stages = stages(m0, m1, elapsed.Seconds())
	}
	res.BacklogAtEnd, _ = e.t.consumerBacklog(ctx)

	// Settle: every send answered, every delivery arrived, the consumers caught up; bounded,
	// and given up early when nothing moves for 5 s.
	perMsg := uint64(p.members * cfg.Devices)
	settleStart := time.Now()
	lastProgress := time.Now()
	var lastAcked, lastDelivered, lastBacklog uint64
	for {
		var outstanding int
		var acked, delivered uint64
		for i, c := range e.clients {
			c.mu.Lock()
			acked += stats[i].acked
			delivered += stats[i].delivered
			c.mu.Unlock()
			if c.alive() {
				outstanding += c.outstanding()
			}
		}
		backlog, err := e.t.consumerBacklog(ctx)
		if err != nil {
			e.log.Warn("read natter's consumer backlog", zap.Error(err))
		}
		if outstanding == 0 && delivered >= acked*perMsg && backlog == 0 {
			break
		}
		if acked != lastAcked || delivered != lastDelivered || backlog != lastBacklog {
			lastAcked, lastDelivered, lastBacklog, lastProgress = acked, delivered, backlog, time.Now()
		}
		if time.Since(settleStart) > cfg.Settle || time.Since(lastProgress) > 5*time.Second || ctx.Err() != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("did not settle in %.0fs: %d sends unanswered, %d of %d deliveries, %d events not yet handled by natter's consumers",
				time.Since(settleStart).Seconds(), outstanding, delivered, acked*perMsg, backlog))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.SettleSeconds = time.Since(settleStart).Seconds()

	// Collect.
	var ack, deliver hist
	res.Errors = map[string]uint64{}
	var mAcked, mDelivered, mRecipient uint64
	for i, c := range e.clients {
		st := stats[i]
		c.mu.Lock()
		c.st, c.window = nil, nil
		res.Sent += st.sent.Load()
		res.Late += st.late.Load()
		res.Acked += st.acked
		res.Delivered += st.delivered
		mAcked += st.mAcked
		mDelivered += st.mDelivered
		mRecipient += st.mRecipient
		ack.merge(&st.ack)
		deliver.merge(&st.deliver)
		for k, v := range st.errs {
			res.Errors[k] += v
		}
		c.mu.Unlock()
	}
	secs := elapsed.Seconds()
	res.Seconds = secs
	res.AckedPerSec = float64(mAcked) / secs
	res.DeliveriesPerSec = float64(mDelivered) / secs
	if p.members > 1 {
		res.DeliveredMsgsPerSec = float64(mRecipient) / float64(p.members-1) / secs
	}
	res.AckLatency = ack.summary()
	res.DeliverLatency = deliver.summary()
	if exp := res.Acked * perMsg; res.Delivered < exp {
		res.Missing = exp - res.Delivered
	}
	if cpuErr == nil && cpuErr1 == nil && e.t.rssPID != -1 {
		res.CPUSeconds = (cpu1 - cpu0).Seconds()
		if mAcked > 0 {
			res.CPUPer1000Msgs = res.CPUSeconds / float64(mAcked) * 1000
		}
		if mDelivered > 0 {
			res.CPUPer1000Deliveries = res.CPUSeconds / float64(mDelivered) * 1000
		}
		res.CPUIncludesClients = e.t.inProcess
	}
	res.ConnectionsHeld = e.alive()
	if res.ConnectionsHeld < len(e.clients) {
		res.Notes = append(res.Notes, fmt.Sprintf("%d connections closed by the server (first: %v)", len(e.clients)-res.ConnectionsHeld, e.firstClose()))
	}
	return res, nil
}

func (e *engine) firstClose() error {
	for _, c := range e.clients {
		if !c.alive() {
			return c.closeErr
		}
	}
	return nil
}

// oneToOnePlan pairs users 2i and 2i+1 in direct conversations; device 0 of each sends.
func (e *engine) oneToOnePlan(ctx context.Context) (plan, error) {
	p := plan{scenario: Scenario1to1, senders: map[*client]string{}, members: 2}
	pairs := len(e.users) / 2
	convs := make([]string, pairs)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range pairs {
		g.Go(func() error {
			id, err := e.t.direct(gctx, e.users[2*i], e.users[2*i+1])
			convs[i] = id
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return p, err
	}
	for i, conv := range convs {
		p.senders[e.clients[2*i*e.cfg.Devices]] = conv
		p.senders[e.clients[(2*i+1)*e.cfg.Devices]] = conv
	}
	p.convs = pairs
	return p, nil
}

// groupPlan creates Groups groups of GroupSize members (fewer when there are not enough users);
// device 0 of every member sends. It returns errNoGroupAPI when natter has no groups.
func (e *engine) groupPlan(ctx context.Context) (plan, error) {
	size := min(e.cfg.GroupSize, len(e.users)/e.cfg.Groups)
	p := plan{scenario: ScenarioGroup, senders: map[*client]string{}, members: size, convs: e.cfg.Groups}
	if size < 2 {
		return p, fmt.Errorf("%d users cannot make %d groups", len(e.users), e.cfg.Groups)
	}
	for g := range e.cfg.Groups {
		members := e.users[g*size : (g+1)*size]
		conv, n, err := e.t.group(ctx, members[0], members[1:], fmt.Sprintf("bench %s %d", e.tag, g))
		if err != nil {
			return p, err
		}
		if n != 0 && n != size {
			return p, fmt.Errorf("group created with %d members, asked for %d", n, size)
		}
		for i := range members {
			p.senders[e.clients[(g*size+i)*e.cfg.Devices]] = conv
		}
	}
	return p, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
