package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

type gatewayJSON struct {
	ID          string `json:"id"`
	URL         string `json:"url"`
	Connections int    `json:"connections"`
}

type discoveryJSON struct {
	// Gateway is the one to connect to: the least loaded (ties broken at random, so that clients
	// asking at the same moment spread over equally loaded gateways).
	Gateway gatewayJSON `json:"gateway"`
	// Gateways are all live gateways, least loaded first.
	Gateways []gatewayJSON `json:"gateways"`
}

// discovery: GET /v1/discovery (no authentication) -> {gateway, gateways}; 503 unavailable when
// no gateway is live or the gateways bucket cannot be read. A gateway is live while its entry is
// in the bucket: the bucket's TTL removes the entries of gateways that stopped refreshing them.
func (s *Server) discovery(c *fiber.Ctx) error {
	gws, err := s.liveGateways(c.UserContext())
	if err != nil {
		return &apiError{status: http.StatusServiceUnavailable, code: protocol.CodeUnavailable,
			message: "gateway directory unavailable, retry", cause: err}
	}
	if len(gws) == 0 {
		return errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "no gateway is live, retry")
	}
	rand.Shuffle(len(gws), func(i, j int) { gws[i], gws[j] = gws[j], gws[i] })
	slices.SortStableFunc(gws, func(a, b gatewayJSON) int { return cmp.Compare(a.Connections, b.Connections) })
	return c.JSON(discoveryJSON{Gateway: gws[0], Gateways: gws})
}

// liveGateways reads every entry of the gateways bucket. Entries that do not decode, or name no
// URL, are skipped and logged.
func (s *Server) liveGateways(ctx context.Context) ([]gatewayJSON, error) {
	kv, err := s.js.KeyValue(ctx, streams.GatewaysBucket)
	if err != nil {
		return nil, fmt.Errorf("gateways bucket: %w", err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("watch gateways bucket: %w", err)
	}
	defer func() {
		if err := w.Stop(); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			s.log.Debug("stop gateways watcher", zap.Error(err))
		}
	}()
	var out []gatewayJSON
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read gateways bucket: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("read gateways bucket: watcher closed")
			}
			if e == nil { // every current entry has been read
				return out, nil
			}
			var info streams.GatewayInfo
			if err := json.Unmarshal(e.Value(), &info); err != nil || info.URL == "" {
				s.log.Warn("skipping malformed gateways entry", zap.String("key", e.Key()), zap.Error(err))
				continue
			}
			if info.ID == "" {
				info.ID = e.Key()
			}
			out = append(out, gatewayJSON{ID: info.ID, URL: info.URL, Connections: info.Connections})
		}
	}
}
