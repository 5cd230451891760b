// Package wire is the search service's contract with its callers: the query, its result, and a
// NATS request/reply client (Client) of the search process, which answers on
// natter.search.v1.<method> in queue group natter-search (see services/search.Server).
//
// The caller decides what may be found: a Query carries the scopes (conversation and seq
// interval) the asker may see, built from store memberships with ScopesOf, and the index returns
// nothing outside them. The encoding is JSON.
package wire

import (
	"errors"
	"fmt"

	"github.com/natter-chat/natter/pkg/store"
)

// Subjects of the search service's methods.
const (
	SubjectQuery   = "natter.search.v1.query"
	SubjectStatus  = "natter.search.v1.status"
	SubjectRebuild = "natter.search.v1.rebuild"
	// QueueGroup is the group the search servers subscribe in.
	QueueGroup = "natter-search"
)

// Limits of a query.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	// MaxTextRunes bounds the query text, in Unicode code points.
	MaxTextRunes = 256
	// MaxCursorBytes bounds a cursor.
	MaxCursorBytes = 128
)

// Scope is one conversation and the seqs in it the asker may see: After < seq, and seq <= UpTo
// unless UpTo is 0. It is store.Member.Sees as data.
type Scope struct {
	ConversationID string `json:"conversation_id"`
	After          uint64 `json:"after"`
	UpTo           uint64 `json:"up_to,omitempty"`
}

// ScopesOf are the parts of m's conversation that m sees, one per membership interval (a member
// who left and joined again has several); none if m sees nothing of it.
func ScopesOf(m store.Member) []Scope {
	var out []Scope
	for _, i := range m.Intervals() {
		out = append(out, Scope{ConversationID: m.ConversationID, After: i.JoinedSeq, UpTo: i.LeftSeq})
	}
	return out
}

// Contains reports whether seq is in the scope (the same rule as store.Member.Sees).
func (s Scope) Contains(seq uint64) bool {
	return seq > s.After && (s.UpTo == 0 || seq <= s.UpTo)
}

// Query asks for the messages matching Text within Scopes, best first and newest first among
// equals.
type Query struct {
	Text   string  `json:"q"`
	Scopes []Scope `json:"scopes"`
	// Before keeps only messages with seq < Before (0: no bound).
	Before uint64 `json:"before,omitempty"`
	// Limit is the most hits returned: 1..MaxLimit.
	Limit int `json:"limit"`
	// Cursor is the NextCursor of the previous page, or empty for the first.
	Cursor string `json:"cursor,omitempty"`
}

// Hit is one message found. Snippet is HTML: the text around the matches, escaped, with each
// match in <mark>…</mark>.
type Hit struct {
	ConversationID string  `json:"conversation_id"`
	Seq            uint64  `json:"seq"`
	MessageID      string  `json:"message_id"`
	SenderID       string  `json:"sender_id"`
	SentAt         int64   `json:"sent_at"` // Unix milliseconds
	Snippet        string  `json:"snippet"`
	Score          float64 `json:"score"`
}

// Result is one page of hits. NextCursor is empty when there is nothing further.
type Result struct {
	Hits       []Hit  `json:"hits"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Status is how far the index is.
type Status struct {
	// IndexedSeq is the consumer's ack floor: every CHAT event at or below it is indexed.
	IndexedSeq uint64 `json:"indexed_seq"`
	// HeadSeq is CHAT's last seq when the status was taken.
	HeadSeq uint64 `json:"head_seq"`
	// Pending is how many CHAT events the search consumer has not indexed yet.
	Pending uint64 `json:"pending"`
	// Documents is how many messages the index holds.
	Documents uint64 `json:"documents"`
	// RebuildFrom and RebuildTo are the CHAT seqs the last rebuild replays (0 when none ran).
	RebuildFrom uint64 `json:"rebuild_from,omitempty"`
	RebuildTo   uint64 `json:"rebuild_to,omitempty"`
}

// Validate checks a query before it is sent.
func (q Query) Validate() error {
	switch {
	case q.Text == "":
		return fmt.Errorf("empty query text: %w", ErrBadQuery)
	case len([]rune(q.Text)) > MaxTextRunes:
		return fmt.Errorf("query text longer than %d characters: %w", MaxTextRunes, ErrBadQuery)
	case q.Limit < 1 || q.Limit > MaxLimit:
		return fmt.Errorf("limit %d not in 1..%d: %w", q.Limit, MaxLimit, ErrBadQuery)
	case len(q.Cursor) > MaxCursorBytes:
		return fmt.Errorf("cursor longer than %d bytes: %w", MaxCursorBytes, ErrBadQuery)
	}
	for _, s := range q.Scopes {
		if s.ConversationID == "" || (s.UpTo != 0 && s.UpTo <= s.After) {
			return fmt.Errorf("empty scope %+v: %w", s, ErrBadQuery)
		}
	}
	return nil
}

// Errors a caller can branch on.
var (
	// ErrBadQuery: the query (its text, limit or cursor) can never be answered.
	ErrBadQuery = errors.New("bad search query")
	// ErrUnavailable: no search process answered in time.
	ErrUnavailable = errors.New("search unavailable")
)

// Error codes of a reply.
const (
	CodeBadQuery = "bad_query"
	CodeInternal = "internal"
	// CodeUnavailable: the search process cannot answer yet (its index is being migrated).
	CodeUnavailable = "unavailable"
)

// Reply is the envelope of every answer: one of Result, Status or Error.
type Reply struct {
	Result *Result `json:"result,omitempty"`
	Status *Status `json:"status,omitempty"`
	Error  *Error  `json:"error,omitempty"`
}

// Error is a failed request.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return "search: " + e.Message }

// Unwrap maps the code to the error a caller branches on.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeBadQuery:
		return ErrBadQuery
	case CodeUnavailable:
		return ErrUnavailable
	}
	return nil
}
