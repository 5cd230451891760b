package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Presence visibility settings (SetPresenceVisibility).
const (
	PresenceEveryone = "everyone" // everyone who shares a conversation with you (the default)
	PresenceContacts = "contacts" // the users of your accepted direct conversations
	PresenceNobody   = "nobody"
)

// Block is one user you blocked.
type Block struct {
	UserID    string    `json:"user_id"`
	BlockedAt time.Time `json:"blocked_at"`
}

// AcceptRequest accepts the direct conversation another user asked you into: their messages,
// held until now, are delivered from here on and are in its history.
func (s *Session) AcceptRequest(ctx context.Context, conversationID string) error {
	return s.call(ctx, http.MethodPost, "/v1/conversations/"+url.PathEscape(conversationID)+"/accept", nil, http.StatusOK, nil)
}

// IgnoreRequest ignores such a request: it stays a request, its messages stay held, and the
// requester is not told.
func (s *Session) IgnoreRequest(ctx context.Context, conversationID string) error {
	return s.call(ctx, http.MethodPost, "/v1/conversations/"+url.PathEscape(conversationID)+"/ignore", nil, http.StatusNoContent, nil)
}

// Block blocks a user: nothing of theirs reaches you, and no presence either way.
func (s *Session) Block(ctx context.Context, userID string) error {
	return s.call(ctx, http.MethodPut, "/v1/blocks/"+url.PathEscape(userID), nil, http.StatusNoContent, nil)
}

// Unblock lifts a block.
func (s *Session) Unblock(ctx context.Context, userID string) error {
	return s.call(ctx, http.MethodDelete, "/v1/blocks/"+url.PathEscape(userID), nil, http.StatusNoContent, nil)
}

// Blocks lists the users you blocked, oldest block first.
func (s *Session) Blocks(ctx context.Context) ([]Block, error) {
	var out struct {
		Blocks []Block `json:"blocks"`
	}
	err := s.call(ctx, http.MethodGet, "/v1/blocks", nil, http.StatusOK, &out)
	return out.Blocks, err
}

// PresenceVisibility is who may see your online status and last seen.
func (s *Session) PresenceVisibility(ctx context.Context) (string, error) {
	var out struct {
		Presence string `json:"presence"`
	}
	err := s.call(ctx, http.MethodGet, "/v1/me/privacy", nil, http.StatusOK, &out)
	return out.Presence, err
}

// SetPresenceVisibility sets it: PresenceEveryone, PresenceContacts or PresenceNobody.
func (s *Session) SetPresenceVisibility(ctx context.Context, visibility string) error {
	return s.call(ctx, http.MethodPut, "/v1/me/privacy", map[string]string{"presence": visibility}, http.StatusOK, nil)
}

// call makes an authenticated API request and decodes a want answer into out (if non-nil).
func (s *Session) call(ctx context.Context, method, path string, body any, want int, out any) error {
	token, err := s.Token(ctx)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("client: %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.api+path, rd)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("client: %s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("client: %s %s: decode: %w", method, path, err)
		}
	}
	return nil
}
