package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/services/search/wire"
)

// queryTimeout bounds one request in the search process.
const queryTimeout = 10 * time.Second

// Server answers the search methods (wire.Subject*) over NATS request/reply, in queue group
// wire.QueueGroup, on a pool of workers. The search process runs it next to its Service: the
// index lives in one process, and every API instance asks it.
type Server struct {
	svc  *Service
	log  *zap.Logger
	met  *Metrics
	subs []*nats.Subscription

	mu       sync.RWMutex // write-held by Stop to close work
	stopping bool
	work     chan *nats.Msg
	workers  sync.WaitGroup
}

// Serve subscribes and answers until Stop. The caller keeps owning nc.
func Serve(nc *nats.Conn, svc *Service, cfg Config, log *zap.Logger, met *Metrics) (*Server, error) {
	s := &Server{svc: svc, log: log.Named("search-server"), met: met, work: make(chan *nats.Msg, cfg.QueryBacklog)}
	for range cfg.QueryWorkers {
		s.workers.Go(func() {
			for m := range s.work {
				s.handle(m)
			}
		})
	}
	for _, subj := range []string{wire.SubjectQuery, wire.SubjectStatus, wire.SubjectRebuild} {
		sub, err := nc.QueueSubscribe(subj, wire.QueueGroup, s.dispatch)
		if err != nil {
			_ = s.Stop(context.Background())
			return nil, fmt.Errorf("search: subscribe %s: %w", subj, err)
		}
		s.subs = append(s.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		s.log.Warn("search server: subscriptions not confirmed yet", zap.Error(err))
	}
	return s, nil
}

// dispatch hands a request to the pool, or answers busy when the backlog is full.
func (s *Server) dispatch(m *nats.Msg) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.stopping {
		select {
		case s.work <- m:
			return
		default:
		}
	}
	s.met.queries.WithLabelValues("busy").Inc()
	s.reply(m, wire.Reply{Error: &wire.Error{Code: wire.CodeInternal, Message: "busy"}})
}

func (s *Server) handle(m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	var r wire.Reply
	var err error
	switch m.Subject {
	case wire.SubjectQuery:
		start := time.Now()
		var q wire.Query
		if err = json.Unmarshal(m.Data, &q); err != nil {
			err = fmt.Errorf("decode query: %v: %w", err, wire.ErrBadQuery)
		} else {
			var res wire.Result
			if res, err = s.svc.Index().Search(ctx, q); err == nil {
				r.Result = &res
			}
		}
		s.met.query.Observe(time.Since(start).Seconds())
	case wire.SubjectStatus:
		var st wire.Status
		if st, err = s.svc.Status(ctx); err == nil {
			r.Status = &st
		}
	case wire.SubjectRebuild:
		var st wire.Status
		if st, err = s.svc.Rebuild(ctx); err == nil {
			r.Status = &st
		}
	}
	switch {
	case err == nil:
		s.met.queries.WithLabelValues("ok").Inc()
	case errors.Is(err, wire.ErrBadQuery):
		s.met.queries.WithLabelValues("bad_query").Inc()
		r = wire.Reply{Error: &wire.Error{Code: wire.CodeBadQuery, Message: err.Error()}}
	case errors.Is(err, wire.ErrUnavailable):
		s.met.queries.WithLabelValues("unavailable").Inc()
		r = wire.Reply{Error: &wire.Error{Code: wire.CodeUnavailable, Message: err.Error()}}
	default:
		s.met.queries.WithLabelValues("error").Inc()
		s.log.Warn("search request failed", zap.String("subject", m.Subject), zap.Error(err))
		r = wire.Reply{Error: &wire.Error{Code: wire.CodeInternal, Message: err.Error()}}
	}
	s.reply(m, r)
}

func (s *Server) reply(m *nats.Msg, r wire.Reply) {
	data, err := json.Marshal(r)
	if err != nil { // cannot happen: plain structs
		s.log.Error("encode search reply", zap.Error(err))
		return
	}
	if err := m.Respond(data); err != nil {
		s.log.Debug("search reply not sent", zap.String("subject", m.Subject), zap.Error(err))
	}
}

// Stop unsubscribes (new requests find no responder) and answers what was already taken.
func (s *Server) Stop(ctx context.Context) error {
	for _, sub := range s.subs {
		_ = sub.Drain()
	}
	s.mu.Lock()
	if !s.stopping {
		s.stopping = true
		close(s.work)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("search server: stop: %w", ctx.Err())
	}
}
