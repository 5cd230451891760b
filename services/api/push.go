package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/natter-chat/natter/pkg/projection"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// Push token limits.
const (
	// MaxPushToken bounds a push token, in bytes: FCM registration tokens are about 160 bytes;
	// a longer one could not fit a notification into FCM's 4 KiB.
	MaxPushToken = 1024
)

// PushPlatforms are the platforms a push token may be registered for. Every token is an FCM
// registration token (iOS apps register through FCM too); the platform is informational.
var PushPlatforms = []string{"android", "ios", "web"}

func (s *Server) pushRoutes(v1 fiber.Router) {
	v1.Put("/devices/:device/push-token", s.authenticate, s.putPushToken)
	v1.Delete("/devices/:device/push-token", s.authenticate, s.deletePushToken)
	v1.Post("/logout", s.authenticate, s.logout)
	v1.Put("/conversations/:id/mute", s.authenticate, s.mute)
}

// device is the :device parameter: a device id of the caller's (device ids are the caller's own
// namespace: the same id under another account is another device).
func device(c *fiber.Ctx) (string, error) {
	d := c.Params("device")
	if !streams.ValidToken(d) {
		return "", errorf(http.StatusBadRequest, CodeInvalidRequest, "device id must be 1-64 characters of A-Z, a-z, 0-9, _ and -")
	}
	return d, nil
}

type pushTokenRequest struct {
	Platform string `json:"platform"`
	Token    string `json:"token"`
}

type pushTokenJSON struct {
	DeviceID  string `json:"device_id"`
	Platform  string `json:"platform"`
	UpdatedAt string `json:"updated_at"` // RFC 3339, UTC
}

// putPushToken: PUT /v1/devices/:device/push-token {platform, token} -> {push_token}: registers
// or replaces the push token of one of the caller's devices.
func (s *Server) putPushToken(c *fiber.Ctx) error {
	dev, err := device(c)
	if err != nil {
		return err
	}
	var req pushTokenRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !slices.Contains(PushPlatforms, req.Platform) {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "platform must be one of android, ios, web")
	}
	if !validPushToken(req.Token) {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "token must be 1-%d printable ASCII characters", MaxPushToken)
	}
	t := store.PushToken{UserID: callerID(c), DeviceID: dev, Platform: req.Platform, Token: req.Token,
		UpdatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	ev := streams.StateEvent{Kind: streams.StatePushTokenSet, At: t.UpdatedAt.UnixMilli(),
		PushToken: &streams.PushTokenState{UserID: t.UserID, DeviceID: dev, Platform: t.Platform, Token: t.Token}}
	if _, err := projection.Record(c.UserContext(), s.js, s.store, ev); err != nil {
		return fmt.Errorf("put push token: %w", err)
	}
	return c.JSON(fiber.Map{"push_token": pushTokenJSON{DeviceID: dev, Platform: t.Platform, UpdatedAt: rfc3339(t.UpdatedAt)}})
}

func validPushToken(t string) bool {
	if len(t) == 0 || len(t) > MaxPushToken {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return false
		}
	}
	return true
}

// deletePushToken: DELETE /v1/devices/:device/push-token -> 204: the device gets no more pushes.
// Deleting a token that is not there succeeds.
func (s *Server) deletePushToken(c *fiber.Ctx) error {
	dev, err := device(c)
	if err != nil {
		return err
	}
	ev := streams.StateEvent{Kind: streams.StatePushTokenRemoved, At: time.Now().UnixMilli(),
		PushToken: &streams.PushTokenState{UserID: callerID(c), DeviceID: dev}}
	if _, err := projection.Record(c.UserContext(), s.js, s.store, ev); err != nil {
		return fmt.Errorf("delete push token: %w", err)
	}
	return c.SendStatus(http.StatusNoContent)
}

type logoutRequest struct {
	DeviceID string `json:"device_id"`
}

// logout: POST /v1/logout {device_id} -> 204: forgets the caller's device and its push token.
// (Access tokens are stateless: the client drops its own.)
func (s *Server) logout(c *fiber.Ctx) error {
	var req logoutRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !streams.ValidToken(req.DeviceID) {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "device_id must be 1-64 characters of A-Z, a-z, 0-9, _ and -")
	}
	ev := streams.StateEvent{Kind: streams.StateDeviceRemoved, At: time.Now().UnixMilli(),
		Device: &streams.DeviceState{UserID: callerID(c), DeviceID: req.DeviceID}}
	if _, err := projection.Record(c.UserContext(), s.js, s.store, ev); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return c.SendStatus(http.StatusNoContent)
}

type muteRequest struct {
	Muted *bool `json:"muted"`
}

// mute: PUT /v1/conversations/:id/mute {muted} -> {conversation_id, muted}: a muted conversation
// sends the caller no push notifications (messages still arrive on connected devices). Current
// members only.
func (s *Server) mute(c *fiber.Ctx) error {
	m, err := s.member(c, true)
	if err != nil {
		return err
	}
	var req muteRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.Muted == nil {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "muted (true or false) is required")
	}
	ctx := c.UserContext()
	kv, err := s.js.KeyValue(ctx, streams.PushSettingsBucket)
	if err != nil {
		return fmt.Errorf("mute: settings bucket: %w", err)
	}
	key := streams.PushSettingKey(m.UserID, m.ConversationID)
	if *req.Muted {
		b, err := json.Marshal(streams.PushSetting{Muted: true, UpdatedAt: time.Now().UnixMilli()})
		if err != nil {
			return fmt.Errorf("mute: %w", err)
		}
		if _, err := kv.Put(ctx, key, b); err != nil {
			return fmt.Errorf("mute: %w", err)
		}
	} else if err := kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("unmute: %w", err)
	}
	return c.JSON(fiber.Map{"conversation_id": m.ConversationID, "muted": *req.Muted})
}

// unmuteAll deletes every mute setting of userID (a deleted account's).
func (s *Server) unmuteAll(ctx context.Context, userID string) error {
	kv, err := s.js.KeyValue(ctx, streams.PushSettingsBucket)
	if err != nil {
		return fmt.Errorf("mute settings bucket: %w", err)
	}
	keys, err := kv.ListKeysFiltered(ctx, userID+".*")
	if err != nil {
		return fmt.Errorf("mute settings of %s: %w", userID, err)
	}
	for key := range keys.Keys() {
		if err := kv.Delete(ctx, key); err != nil {
			return fmt.Errorf("unmute %s: %w", key, err)
		}
	}
	return nil
}
