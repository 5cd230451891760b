package store

import (
	"context"
	"errors"
	"fmt"
)

// ErrBadPage: a Page asks for Before and After at once, or a limit out of range.
var ErrBadPage = errors.New("bad page")

// Normalize checks p and fills in the default limit.
func (p Page) Normalize() (Page, error) {
	if p.Before != 0 && p.Forward() {
		return p, fmt.Errorf("before and after together: %w", ErrBadPage)
	}
	if p.Limit == 0 {
		p.Limit = DefaultPageLimit
	}
	if p.Limit < 0 || p.Limit > MaxPageLimit {
		return p, fmt.Errorf("limit %d not in 1..%d: %w", p.Limit, MaxPageLimit, ErrBadPage)
	}
	return p, nil
}

// Pager reads one page of one conversation: Store.Messages, or a reader that also sees events
// not stored yet (timeline.Reader.Page).
type Pager func(ctx context.Context, p Page) ([]Message, error)

// Around returns up to limit messages of a conversation around seq, newest first: the
// (limit+1)/2 newest with seq' <= seq and the limit/2 oldest with seq' > seq. It is "jump to a
// message" for history.
func Around(ctx context.Context, s Store, conversationID string, seq uint64, limit int) ([]Message, error) {
	return AroundWith(ctx, func(ctx context.Context, p Page) ([]Message, error) {
		return s.Messages(ctx, conversationID, p)
	}, seq, limit)
}

// AroundWith is Around over any Pager.
func AroundWith(ctx context.Context, page Pager, seq uint64, limit int) ([]Message, error) {
	p, err := Page{Limit: limit}.Normalize()
	if err != nil {
		return nil, err
	}
	older, err := page(ctx, Page{Before: seq + 1, Limit: (p.Limit + 1) / 2})
	if err != nil {
		return nil, fmt.Errorf("around %d, older half: %w", seq, err)
	}
	if p.Limit/2 == 0 {
		return older, nil
	}
	newer, err := page(ctx, Page{After: seq, Limit: p.Limit / 2})
	if err != nil {
		return nil, fmt.Errorf("around %d, newer half: %w", seq, err)
	}
	return append(newer, older...), nil
}
