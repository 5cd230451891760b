package client

import (
	"context"
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
	return s.call(ctx, http.MethodPost, "/v1/conversations/"+url.PathEscape(conversationID)+"/accept", nil, nil)
}

// IgnoreRequest ignores such a request: it stays a request, its messages stay held, and the
// requester is not told.
func (s *Session) IgnoreRequest(ctx context.Context, conversationID string) error {
	return s.call(ctx, http.MethodPost, "/v1/conversations/"+url.PathEscape(conversationID)+"/ignore", nil, nil)
}

// Block blocks a user: nothing of theirs reaches you, and no presence either way.
func (s *Session) Block(ctx context.Context, userID string) error {
	return s.call(ctx, http.MethodPut, "/v1/blocks/"+url.PathEscape(userID), nil, nil)
}

// Unblock lifts a block.
func (s *Session) Unblock(ctx context.Context, userID string) error {
	return s.call(ctx, http.MethodDelete, "/v1/blocks/"+url.PathEscape(userID), nil, nil)
}

// Blocks lists the users you blocked, oldest block first.
func (s *Session) Blocks(ctx context.Context) ([]Block, error) {
	var out struct {
		Blocks []Block `json:"blocks"`
	}
	err := s.call(ctx, http.MethodGet, "/v1/blocks", nil, &out)
	return out.Blocks, err
}

// PresenceVisibility is who may see your online status and last seen.
func (s *Session) PresenceVisibility(ctx context.Context) (string, error) {
	var out struct {
		Presence string `json:"presence"`
	}
	err := s.call(ctx, http.MethodGet, "/v1/me/privacy", nil, &out)
	return out.Presence, err
}

// SetPresenceVisibility sets it: PresenceEveryone, PresenceContacts or PresenceNobody.
func (s *Session) SetPresenceVisibility(ctx context.Context, visibility string) error {
	return s.call(ctx, http.MethodPut, "/v1/me/privacy", map[string]string{"presence": visibility}, nil)
}
