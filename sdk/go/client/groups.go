package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Group roles (docs/api.md, "Roles"): the owner and admins manage a group.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// APIError is an error answer of the HTTP API: its status and code (docs/api.md, "Errors").
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("client: %d %s: %s", e.Status, e.Code, e.Message)
}

// Conversation is a conversation object of the HTTP API.
type Conversation struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"`
	Name      string   `json:"name"`
	CreatedAt string   `json:"created_at"`
	Members   []string `json:"members,omitempty"`
	// DeletedSeq is the seq of a deleted group's deleted event; 0 while it exists.
	DeletedSeq uint64 `json:"deleted_seq,omitempty"`
}

// GroupChange is the answer to a group change: the group after it and the seq of its member
// event.
type GroupChange struct {
	Conversation Conversation `json:"conversation"`
	Seq          uint64       `json:"seq"`
}

// Member is a current member of a conversation with its role.
type Member struct {
	UserID    string `json:"user_id"`
	Role      string `json:"role"`
	JoinedSeq uint64 `json:"joined_seq"`
}

// Invitee is a pending invitation shown in a group's detail.
type Invitee struct {
	UserID     string `json:"user_id"`
	InvitedBy  string `json:"invited_by"`
	InvitedSeq uint64 `json:"invited_seq"`
}

// ConversationDetail is GET /v1/conversations/{id}: the members with their roles and, for a
// group, its pending invitations.
type ConversationDetail struct {
	Conversation Conversation `json:"conversation"`
	Members      []Member     `json:"members"`
	Invitations  []Invitee    `json:"invitations"`
}

// Invitation is one of the caller's pending group invitations.
type Invitation struct {
	Conversation Conversation `json:"conversation"`
	InvitedBy    string       `json:"invited_by"`
	InvitedSeq   uint64       `json:"invited_seq"`
}

// CreateGroup creates a group owned by the caller, who is its only member; memberIDs are invited.
func (s *Session) CreateGroup(ctx context.Context, name string, memberIDs []string) (GroupChange, error) {
	var out GroupChange
	return out, s.call(ctx, http.MethodPost, "/v1/groups", map[string]any{"name": name, "member_ids": memberIDs}, &out)
}

// Conversation reads a conversation's detail (current members only).
func (s *Session) Conversation(ctx context.Context, id string) (ConversationDetail, error) {
	var out ConversationDetail
	return out, s.call(ctx, http.MethodGet, conv(id), nil, &out)
}

// Invite invites users to a group (the owner or an admin); each joins by accepting.
func (s *Session) Invite(ctx context.Context, id string, userIDs []string) (GroupChange, error) {
	var out GroupChange
	return out, s.call(ctx, http.MethodPost, conv(id)+"/members", map[string]any{"user_ids": userIDs}, &out)
}

// Invitations lists the caller's pending group invitations, newest first.
func (s *Session) Invitations(ctx context.Context) ([]Invitation, error) {
	var out struct {
		Invitations []Invitation `json:"invitations"`
	}
	return out.Invitations, s.call(ctx, http.MethodGet, "/v1/invitations", nil, &out)
}

// Accept accepts an invitation: the caller is a member from the accepted event on.
func (s *Session) Accept(ctx context.Context, id string) (GroupChange, error) {
	var out GroupChange
	return out, s.call(ctx, http.MethodPost, conv(id)+"/accept", nil, &out)
}

// Decline declines an invitation and returns the seq of the declined event.
func (s *Session) Decline(ctx context.Context, id string) (uint64, error) {
	var out struct {
		Seq uint64 `json:"seq"`
	}
	return out.Seq, s.call(ctx, http.MethodPost, conv(id)+"/decline", nil, &out)
}

// Rename renames a group (the owner or an admin).
func (s *Session) Rename(ctx context.Context, id, name string) (GroupChange, error) {
	var out GroupChange
	return out, s.call(ctx, http.MethodPatch, conv(id), map[string]string{"name": name}, &out)
}

// SetRole makes a member an admin (RoleAdmin: the owner or an admin) or an admin a plain
// member again (RoleMember: the owner).
func (s *Session) SetRole(ctx context.Context, id, userID, role string) (GroupChange, error) {
	var out GroupChange
	return out, s.call(ctx, http.MethodPut, conv(id)+"/members/"+url.PathEscape(userID)+"/role", map[string]string{"role": role}, &out)
}

// TransferOwnership hands the group to another current member (the owner), who becomes the
// owner; the caller becomes an admin.
func (s *Session) TransferOwnership(ctx context.Context, id, userID string) (GroupChange, error) {
	var out GroupChange
	return out, s.call(ctx, http.MethodPost, conv(id)+"/owner", map[string]string{"user_id": userID}, &out)
}

// Remove removes a member (the owner anyone, an admin plain members) or withdraws an
// invitation; naming the caller leaves.
func (s *Session) Remove(ctx context.Context, id, userID string) (GroupChange, error) {
	var out GroupChange
	return out, s.call(ctx, http.MethodDelete, conv(id)+"/members/"+url.PathEscape(userID), nil, &out)
}

// Leave leaves a group; when the owner leaves, the longest-standing admin (else member) becomes
// the owner.
func (s *Session) Leave(ctx context.Context, id string) (GroupChange, error) {
	var out GroupChange
	return out, s.call(ctx, http.MethodPost, conv(id)+"/leave", nil, &out)
}

// DeleteGroup deletes a group (the owner): every member is told, nobody can send any more, and
// each keeps the history they saw.
func (s *Session) DeleteGroup(ctx context.Context, id string) (GroupChange, error) {
	var out GroupChange
	return out, s.call(ctx, http.MethodDelete, conv(id), nil, &out)
}

func conv(id string) string { return "/v1/conversations/" + url.PathEscape(id) }

// call sends one authenticated JSON request and decodes a 2xx answer into out; an error answer
// is an *APIError.
func (s *Session) call(ctx context.Context, method, path string, body, out any) error {
	token, err := s.Token(ctx)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("client: %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
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
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("client: %s %s: answer: %w", method, path, err)
		}
	}
	return nil
}
