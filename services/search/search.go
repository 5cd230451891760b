// Package search is natter's message search: a durable consumer of its own on CHAT (search)
// that indexes message text into an Index (Bleve, under the data dir), and a NATS request/reply
// service (Server) that answers queries from the API.
//
// It is the pattern for adding a consumer to natter:
//   - Durable and at-least-once: the consumer "search" is declared with the others in streams;
//     an event is acknowledged only after the index batch holding it is committed (the consumer
//     kit's Flush hook), so a crash loses nothing: what was not acknowledged comes back.
//   - Idempotent: a document's id is its conversation and seq (DocID), so an event indexed twice
//     is one document, and any range of CHAT can be replayed.
//   - Independent: it reads CHAT, not the store, and nothing waits for it. A search process that
//     is down or behind makes search stale (its lag is a metric), never chat.
//
// Membership is the caller's: a query carries the scopes the asker may see (wire.ScopesOf, the
// rule history uses), and the index finds nothing outside them.
//
// Edits and deletes (pkg/revision publishes them on CHAT after their target) revise the target's
// document: an edit indexes it again with the new text, a delete replaces it with a tombstone
// (see revise). Hides change nothing in the index: the API leaves out what the asker hid.
package search

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/services/search/wire"
	"github.com/natter-chat/natter/streams"
)

// Config tunes the search service.
type Config struct {
	// Dir is the index directory.
	Dir string
	// Chunk is the most events indexed in one batch (one commit, then one ack each).
	Chunk int
	// Linger lets a batch wait this long after its first event for more, up to Chunk: Bleve's
	// cost per event falls about ninefold from batches of 8 to batches of 2,048, so indexing a
	// steady trickle in large batches costs far less CPU, which the hot path needs more than
	// search needs freshness. A message is searchable within about Linger of being sent.
	Linger time.Duration
	// Gather lets events gather on the server between the search consumer's pulls (consumer.Config
	// Gather): once caught up, it takes what arrived in this long in one delivery instead of
	// each event on its own. 20 ms took a paced 3,800 msgs/s from 0.279 to 0.261 CPU s per
	// 1,000 messages and its p99 from 42 to 37 ms (docs/performance.md, twenty-fifth round);
	// longer gathers (100 ms, 1 s) lengthened the tail.
	Gather time.Duration
	// BatchBytes commits a batch early once its text reaches this many bytes, bounding the memory
	// a run of long messages takes (their acknowledgements still wait for the chunk's end).
	BatchBytes int
	// QueryWorkers answer queries at once; QueryBacklog wait for one. A query that finds both
	// full is answered busy at once (the API answers 503).
	QueryWorkers int
	QueryBacklog int
	// LagEvery is how often the lag metrics are refreshed from the consumer's state.
	LagEvery time.Duration
}

// DefaultConfig suits one machine; Dir is set by the process (<data dir>/search).
func DefaultConfig() Config {
	return Config{Chunk: 2048, Linger: time.Second, Gather: 20 * time.Millisecond, BatchBytes: 8 << 20, QueryWorkers: 8, QueryBacklog: 256, LagEvery: 2 * time.Second}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("search: index dir is required")
	case c.Chunk < 1 || c.Chunk > 10000:
		return fmt.Errorf("search: chunk %d not in 1..10000", c.Chunk)
	case c.Linger < 0 || c.Linger > time.Minute:
		return fmt.Errorf("search: linger %s not in 0..1m", c.Linger)
	case c.Gather < 0 || c.Gather > time.Second:
		return fmt.Errorf("search: gather %s not in 0..1s", c.Gather)
	case c.BatchBytes < 1:
		return fmt.Errorf("search: batch bytes %d must be positive", c.BatchBytes)
	case c.QueryWorkers < 1 || c.QueryBacklog < 0:
		return fmt.Errorf("search: %d query workers and backlog %d: want at least 1 and 0", c.QueryWorkers, c.QueryBacklog)
	case c.LagEvery <= 0:
		return fmt.Errorf("search: lag refresh %s must be positive", c.LagEvery)
	}
	return nil
}

// Deps are what the search service needs from the process.
type Deps struct {
	fx.In
	Log     *zap.Logger
	JS      jetstream.JetStream
	Metrics *Metrics
	Kit     *consumer.Metrics `optional:"true"`
}

// Service indexes CHAT into its Index. Start it once, Stop it once.
type Service struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
	idx  *Bleve

	mu      sync.Mutex // held by Start, Stop and Rebuild: one runner at a time
	runner  *consumer.Runner
	stopped bool

	// A migration of the index (Start of a stale one): cancelled and waited for by Stop.
	cancelMigration context.CancelFunc
	migrated        chan struct{}

	rebuildMu              sync.Mutex
	rebuildFrom, rebuildTo uint64

	batchMu sync.Mutex // the batch of the chunk being handled
	put     []Doc
	bytes   int

	stopLag chan struct{}
	lagDone chan struct{}
}

// New opens the index; Start begins consuming.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	idx, err := openBleve(cfg.Dir)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, deps: deps, log: deps.Log.Named("search"), idx: idx}, nil
}

// Index is the service's index, for its query server.
func (s *Service) Index() Index { return s.idx }

// Start binds to the durable consumer and starts indexing. An index of an older format is
// migrated first, in the background: the rest of the process does not wait for it, searches
// answer wire.ErrUnavailable meanwhile, and the consumer starts once it is done.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ := s.idx.Count()
	if s.idx.Stale() {
		mctx, cancel := context.WithCancel(context.Background())
		s.cancelMigration, s.migrated = cancel, make(chan struct{})
		s.log.Info("search index is of an older format: migrating it", zap.String("dir", s.cfg.Dir), zap.Uint64("documents", n))
		go s.migrate(mctx)
	} else if err := s.startRunner(ctx); err != nil {
		return err
	}
	s.stopLag, s.lagDone = make(chan struct{}), make(chan struct{})
	go s.watchLag()
	s.log.Info("search started", zap.String("dir", s.cfg.Dir), zap.Uint64("documents", n))
	return nil
}

// migrate migrates the index, then starts the consumer. A failure leaves search unavailable
// until the process is restarted, which tries again.
func (s *Service) migrate(ctx context.Context) {
	defer close(s.migrated)
	start := time.Now()
	n, err := s.idx.Migrate(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("search index migration failed: search is unavailable until a restart", zap.Error(err))
		}
		return
	}
	s.log.Info("search index migrated to the current format", zap.String("dir", s.cfg.Dir), zap.Uint64("documents", n), zap.Duration("took", time.Since(start)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || ctx.Err() != nil { // Stop cancels ctx first
		return
	}
	if err := s.startRunner(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("search: start after the migration", zap.Error(err))
	}
}

// startRunner starts consuming. Search is the consumer's only puller, and its consumer acks
// all up to a message with one ack: the consumer kit first resets the consumer to its ack floor,
// so that what a previous run pulled and did not acknowledge (a crash)
// comes again at once and first, rather than after the ack wait, behind later events whose ack
// would acknowledge it unindexed.
func (s *Service) startRunner(ctx context.Context) error {
	s.batchMu.Lock()
	s.put, s.bytes = nil, 0 // a stopped runner's uncommitted batch: not acknowledged, so it comes again
	s.batchMu.Unlock()
	cons, err := s.deps.JS.Consumer(ctx, streams.ChatStream, streams.SearchConsumer)
	if err != nil {
		return fmt.Errorf("search: consumer: %w", err)
	}
	s.runner, err = consumer.Start(s.deps.JS, cons, consumer.Config{Name: streams.SearchConsumer, Workers: 1, MaxChunk: s.cfg.Chunk, Linger: s.cfg.Linger, Gather: s.cfg.Gather, RetryInPlace: true},
		s.Handle, consumer.Hooks{Flush: s.commit}, s.log, s.deps.Kit)
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	return nil
}

// Stop drains the consumer (committing and acknowledging what it holds) and closes the index.
func (s *Service) Stop(ctx context.Context) error {
	if s.stopLag != nil {
		close(s.stopLag)
		<-s.lagDone
		s.stopLag = nil
	}
	if s.cancelMigration != nil {
		s.cancelMigration()
		<-s.migrated
		s.cancelMigration = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	var err error
	if s.runner != nil {
		err = s.runner.Stop(ctx)
		s.runner = nil
	}
	if cerr := s.idx.Close(); err == nil {
		err = cerr
	}
	return err
}

// Handle adds one CHAT event to the chunk's batch. Only text messages are indexed.
func (s *Service) Handle(ctx context.Context, msg jetstream.Msg) error {
	_, kind, _ := streams.ParseChatSubject(msg.Subject())
	switch kind {
	case streams.KindMsg:
	case streams.KindEdit, streams.KindDelete:
		return s.revise(msg)
	default:
		return nil
	}
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(fmt.Errorf("metadata: %w", err))
	}
	m, ok, err := timeline.FromStream(msg.Subject(), meta.Sequence.Stream, msg.Data())
	if err != nil {
		return consumer.Permanent(err)
	}
	if !ok || m.Text == "" {
		return nil
	}
	s.batchMu.Lock()
	s.put = append(s.put, Doc{
		ConversationID: m.ConversationID, Seq: m.Seq, MessageID: m.ID,
		SenderID: m.SenderID, SentAt: m.SentAt.UnixMilli(), Text: m.Text,
	})
	s.bytes += len(m.Text)
	full := s.bytes >= s.cfg.BatchBytes
	s.batchMu.Unlock()
	if full {
		// Commit early; every event of the chunk is still acknowledged only after its end.
		return s.commit(ctx)
	}
	return nil
}

// revise indexes an edit (the target's document again, with the new text) or a delete (the
// target's document replaced by a tombstone). The target is in the batch or the index: CHAT
// puts it first, and one worker handles events in order. A target the index never had (older
// than what CHAT kept when the index was built) is not indexed by an edit; an edit after a
// delete finds the tombstone and changes nothing. A hide changes nothing here: search leaves
// out, per user, what the store says they hid.
func (s *Service) revise(msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(fmt.Errorf("metadata: %w", err))
	}
	m, _, err := timeline.FromStream(msg.Subject(), meta.Sequence.Stream, msg.Data())
	if err != nil {
		return consumer.Permanent(err)
	}
	id := DocID(m.ConversationID, m.Target)
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	// The batch's latest version of the document, else the index's.
	var (
		doc   Doc
		found bool
	)
	for i := len(s.put) - 1; i >= 0 && !found; i-- {
		if s.put[i].ID() == id {
			doc, found = s.put[i], true
		}
	}
	if !found {
		if doc, found, err = s.idx.Doc(id); err != nil {
			return err
		}
	}
	switch {
	case m.Kind == streams.KindDelete:
		doc = Doc{ConversationID: m.ConversationID, Seq: m.Target, MessageID: m.TargetID, Deleted: true}
	case !found || doc.Deleted:
		s.deps.Metrics.skipped.Inc()
		return nil
	default:
		doc.Text = m.Text
	}
	s.put = append(s.put, doc)
	s.bytes += len(doc.Text)
	return nil
}

// commit writes the batch to the index (the kit's Flush hook: before the chunk is acked). On an
// error the batch is kept: the kit retries the commit in place.
func (s *Service) commit(ctx context.Context) error {
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	put := s.put
	if len(put) == 0 {
		return nil
	}
	start := time.Now()
	if err := s.idx.Apply(ctx, put, nil); err != nil {
		return fmt.Errorf("search: commit %d documents: %w", len(put), err)
	}
	s.put, s.bytes = nil, 0
	s.deps.Metrics.indexed.Add(float64(len(put)))
	s.deps.Metrics.batch.Observe(time.Since(start).Seconds())
	return nil
}

// Status reports how far the index is.
func (s *Service) Status(ctx context.Context) (wire.Status, error) {
	cons, err := s.deps.JS.Consumer(ctx, streams.ChatStream, streams.SearchConsumer)
	if err != nil {
		return wire.Status{}, fmt.Errorf("search: status: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return wire.Status{}, fmt.Errorf("search: status: %w", err)
	}
	st := wire.Status{IndexedSeq: info.AckFloor.Stream, Pending: info.NumPending + uint64(info.NumAckPending)}
	if str, err := s.deps.JS.Stream(ctx, streams.ChatStream); err == nil {
		if sinfo, err := str.Info(ctx); err == nil {
			st.HeadSeq = sinfo.State.LastSeq
		}
	}
	if st.Documents, err = s.idx.Count(); err != nil {
		return wire.Status{}, err
	}
	s.rebuildMu.Lock()
	st.RebuildFrom, st.RebuildTo = s.rebuildFrom, s.rebuildTo
	s.rebuildMu.Unlock()
	return st, nil
}

// Rebuild drops the index and replays CHAT into it from its first event: the consumer is
// recreated (same definition, so it delivers everything again) and the index emptied, in that
// order, so that a crash in between leaves an index that the replay completes. It returns once
// the replay has started; queries are answered meanwhile from what is indexed so far.
func (s *Service) Rebuild(ctx context.Context) (wire.Status, error) {
	s.mu.Lock()
	if s.runner == nil {
		s.mu.Unlock()
		return wire.Status{}, fmt.Errorf("search: rebuild: not running")
	}
	err := s.rebuild(ctx)
	s.mu.Unlock()
	if err != nil {
		return wire.Status{}, err
	}
	return s.Status(ctx)
}

func (s *Service) rebuild(ctx context.Context) error {
	if err := s.runner.Stop(ctx); err != nil {
		return fmt.Errorf("search: rebuild: stop consumer: %w", err)
	}
	s.runner = nil
	cons, err := s.deps.JS.Consumer(ctx, streams.ChatStream, streams.SearchConsumer)
	if err != nil {
		return fmt.Errorf("search: rebuild: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("search: rebuild: %w", err)
	}
	str, err := s.deps.JS.Stream(ctx, streams.ChatStream)
	if err != nil {
		return fmt.Errorf("search: rebuild: %w", err)
	}
	sinfo, err := str.Info(ctx)
	if err != nil {
		return fmt.Errorf("search: rebuild: %w", err)
	}
	if err := s.deps.JS.DeleteConsumer(ctx, streams.ChatStream, streams.SearchConsumer); err != nil {
		return fmt.Errorf("search: rebuild: delete consumer: %w", err)
	}
	cfg := info.Config
	cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverAllPolicy, 0 // from the stream's start, whatever it was made with
	if _, err := s.deps.JS.CreateOrUpdateConsumer(ctx, streams.ChatStream, cfg); err != nil {
		return fmt.Errorf("search: rebuild: create consumer: %w", err)
	}
	if err := s.idx.Reset(); err != nil {
		return fmt.Errorf("search: rebuild: %w", err)
	}
	s.rebuildMu.Lock()
	s.rebuildFrom, s.rebuildTo = sinfo.State.FirstSeq, sinfo.State.LastSeq
	s.rebuildMu.Unlock()
	s.log.Info("search index dropped; replaying CHAT", zap.Uint64("from", sinfo.State.FirstSeq), zap.Uint64("to", sinfo.State.LastSeq))
	return s.startRunner(ctx)
}

// watchLag refreshes the lag metrics until Stop.
func (s *Service) watchLag() {
	defer close(s.lagDone)
	t := time.NewTicker(s.cfg.LagEvery)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LagEvery)
		st, err := s.Status(ctx)
		cancel()
		if err != nil {
			s.log.Debug("search status", zap.Error(err))
		} else {
			s.deps.Metrics.observe(st)
		}
		select {
		case <-s.stopLag:
			return
		case <-t.C:
		}
	}
}

// Module runs the search service and its query server in an fx graph.
var Module = fx.Module("search",
	fx.Provide(New, NewMetrics),
	fx.Invoke(func(lc fx.Lifecycle, s *Service, deps Deps, srvCfg Config) {
		var srv *Server
		lc.Append(fx.Hook{
			OnStart: func(ctx context.Context) error {
				if err := s.Start(ctx); err != nil {
					return err
				}
				var err error
				if srv, err = Serve(deps.JS.Conn(), s, srvCfg, deps.Log, deps.Metrics); err != nil {
					_ = s.Stop(ctx)
				}
				return err
			},
			OnStop: func(ctx context.Context) error {
				var err error
				if srv != nil {
					err = srv.Stop(ctx)
				}
				if serr := s.Stop(ctx); err == nil {
					err = serr
				}
				return err
			},
		})
	}),
)
