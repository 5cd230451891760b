package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/search/wire"
	"github.com/natter-chat/natter/streams"
)

// CodeSearchUnavailable: no search process answered; retry later (the rest of the API works).
const CodeSearchUnavailable protocol.Code = "search_unavailable"

type searchJSON struct {
	Hits       []wire.Hit `json:"hits"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// search: GET /v1/search?q=…[&conversation_id=C][&before=S][&limit=N][&cursor=X]. Finds
// messages in the caller's conversations, each only in the part the caller may see
// (store.Member.Sees, as history): a former member finds nothing sent after leaving, a member
// added later nothing sent before. Naming a conversation the caller never was in is answered
// like history does: 404 not_member.
func (s *Server) search(c *fiber.Ctx) error {
	q, convID, err := parseSearchQuery(c.Context().QueryArgs())
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	var members []store.Member
	if convID != "" {
		m, err := s.store.Member(ctx, convID, callerID(c))
		switch {
		case errors.Is(err, store.ErrNotFound):
			return errNotMember
		case err != nil:
			return fmt.Errorf("search: membership of %s: %w", convID, err)
		}
		members = []store.Member{m}
	} else if members, err = s.store.MembershipsOf(ctx, callerID(c)); err != nil {
		return fmt.Errorf("search: memberships: %w", err)
	}
	for _, m := range members {
		q.Scopes = append(q.Scopes, wire.ScopesOf(m)...)
	}
	if len(q.Scopes) == 0 {
		return c.JSON(searchJSON{Hits: []wire.Hit{}})
	}
	res, err := s.searcher.Search(ctx, q)
	switch {
	case errors.Is(err, wire.ErrBadQuery):
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "cursor is not one this search gave")
	case errors.Is(err, wire.ErrUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, code: CodeSearchUnavailable,
			message: "search is unavailable, retry", cause: err, retryAfter: 5 * time.Second}
	case err != nil:
		return fmt.Errorf("search: %w", err)
	}
	if res.Hits, err = s.notHidden(ctx, callerID(c), res.Hits); err != nil {
		return err
	}
	// What consent hides (held requests, blocked senders) is left out of the page; the cursor
	// still goes on after the last hit searched, so a page may be short.
	me := callerID(c)
	res.Hits = slices.DeleteFunc(res.Hits, func(h wire.Hit) bool { return !s.consent.SeesMessage(me, h.SenderID, h.ConversationID) })
	return c.JSON(searchJSON(res))
}

// notHidden leaves out the hits the caller deleted for themselves (the index is shared by every
// member; a delete for everyone is out of the index already). A page may so hold fewer hits
// than its limit; its cursor still leads on.
func (s *Server) notHidden(ctx context.Context, userID string, hits []wire.Hit) ([]wire.Hit, error) {
	out := hits[:0]
	for _, h := range hits {
		m, err := s.store.MessageByID(ctx, h.ConversationID, h.MessageID)
		switch {
		case errors.Is(err, store.ErrNotFound): // not stored yet: nobody hid it as far as the store knows
		case err != nil:
			return nil, fmt.Errorf("search: message %s: %w", h.MessageID, err)
		case m.HiddenTo(userID) || m.Deleted():
			continue
		}
		out = append(out, h)
	}
	return out, nil
}

// parseSearchQuery reads the query string of GET /v1/search: the query without its scopes, and
// the conversation named, if any. Every error is an *apiError.
func parseSearchQuery(args *fasthttp.Args) (wire.Query, string, error) {
	q := wire.Query{Text: strings.TrimSpace(string(args.Peek("q"))), Limit: wire.DefaultLimit}
	switch {
	case !utf8.ValidString(q.Text):
		return q, "", errorf(http.StatusBadRequest, protocol.CodeInvalidUTF8, "q is not valid UTF-8")
	case q.Text == "":
		return q, "", errorf(http.StatusBadRequest, CodeInvalidRequest, "q is required")
	case utf8.RuneCountInString(q.Text) > wire.MaxTextRunes:
		return q, "", errorf(http.StatusBadRequest, CodeInvalidRequest, "q is longer than %d characters", wire.MaxTextRunes)
	}
	var convID string
	if args.Has("conversation_id") {
		if convID = string(args.Peek("conversation_id")); !streams.ValidToken(convID) {
			return q, "", errNotMember
		}
	}
	if args.Has("before") {
		seq, err := strconv.ParseUint(string(args.Peek("before")), 10, 63)
		if err != nil || seq == 0 {
			return q, "", errorf(http.StatusBadRequest, CodeInvalidRequest, "before must be a positive integer (a seq)")
		}
		q.Before = seq
	}
	if args.Has("limit") {
		n, err := strconv.Atoi(string(args.Peek("limit")))
		if err != nil || n < 1 || n > wire.MaxLimit {
			return q, "", errorf(http.StatusBadRequest, CodeInvalidRequest, "limit must be 1-%d", wire.MaxLimit)
		}
		q.Limit = n
	}
	if args.Has("cursor") {
		q.Cursor = string(args.Peek("cursor"))
		if q.Cursor == "" || len(q.Cursor) > wire.MaxCursorBytes {
			return q, "", errorf(http.StatusBadRequest, CodeInvalidRequest, "cursor is not one this search gave")
		}
	}
	return q, convID, nil
}
