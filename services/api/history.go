package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

type historyMode int

const (
	modeNewest historyMode = iota
	modeBefore
	modeAfter
	modeAround
	modeAroundID
)

type historyQuery struct {
	mode      historyMode
	seq       uint64 // before, after, around
	messageID string // around_id
	limit     int
}

// historyJSON is a page of history, newest first. Older is the "before" value of the next older
// page and Newer the "after" value of the next newer page; each is 0 when the page is empty or
// the caller may see nothing further that way.
type historyJSON struct {
	Messages []protocol.Event `json:"messages"`
	Older    uint64           `json:"older"`
	Newer    uint64           `json:"newer"`
}

// messages: GET /v1/conversations/:id/messages?before=S|after=S|around=S|around_id=ID&limit=N.
// Current and former members may read; a former member sees only what it saw while a member
// (store.Member.Sees), and everyone else gets 404 not_member.
func (s *Server) messages(c *fiber.Ctx) error {
	m, err := s.member(c, false)
	if err != nil {
		return err
	}
	q, err := parseHistoryQuery(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	var (
		page                 []store.Message
		olderDone, newerDone bool // known: nothing further that way
	)
	switch q.mode {
	case modeNewest:
		page, err = s.visiblePage(ctx, m, store.Page{Limit: q.limit})
		olderDone, newerDone = len(page) < q.limit, true
	case modeBefore:
		page, err = s.visiblePage(ctx, m, store.Page{Before: q.seq, Limit: q.limit})
		olderDone = len(page) < q.limit
	case modeAfter:
		page, err = s.visiblePage(ctx, m, store.Page{After: q.seq, Limit: q.limit})
		newerDone = len(page) < q.limit
	case modeAround, modeAroundID:
		seq := q.seq
		if q.mode == modeAroundID {
			if seq, err = s.messageSeq(ctx, m, q.messageID); err != nil {
				return err
			}
		}
		page, err = s.aroundPage(ctx, m, seq, q.limit)
	}
	if err != nil {
		return fmt.Errorf("history %s: %w", m.ConversationID, err)
	}
	out := historyJSON{Messages: make([]protocol.Event, 0, len(page))}
	for _, msg := range page {
		// Left out here, not by visiblePage (whose pages only lose their far end): a revision
		// of a message the member may not see, another member's hide.
		if view, ok := timeline.View(msg, m.UserID); ok && timeline.Sees(m, msg) {
			out.Messages = append(out.Messages, timeline.Event(view))
		}
	}
	if len(page) > 0 {
		oldest, newest := page[len(page)-1].Seq, page[0].Seq
		if !olderDone {
			if out.Older, err = s.probe(ctx, m, store.Page{Before: oldest, Limit: 1}, oldest); err != nil {
				return fmt.Errorf("history %s: probe older: %w", m.ConversationID, err)
			}
		}
		if !newerDone {
			if out.Newer, err = s.probe(ctx, m, store.Page{After: newest, Limit: 1}, newest); err != nil {
				return fmt.Errorf("history %s: probe newer: %w", m.ConversationID, err)
			}
		}
	}
	return c.JSON(out)
}

// probe returns hint if m may see an event of page p, else 0.
func (s *Server) probe(ctx context.Context, m store.Member, p store.Page, hint uint64) (uint64, error) {
	more, err := s.visiblePage(ctx, m, p)
	if err != nil || len(more) == 0 {
		return 0, err
	}
	return hint, nil
}

func parseHistoryQuery(c *fiber.Ctx) (historyQuery, error) {
	args := c.Context().QueryArgs()
	q := historyQuery{mode: modeNewest, limit: store.DefaultPageLimit}
	given := 0
	for _, p := range []struct {
		name string
		mode historyMode
	}{{"before", modeBefore}, {"after", modeAfter}, {"around", modeAround}, {"around_id", modeAroundID}} {
		if !args.Has(p.name) {
			continue
		}
		given++
		q.mode = p.mode
		v := string(args.Peek(p.name))
		if p.mode == modeAroundID {
			if !streams.ValidToken(v) {
				return q, errorf(http.StatusBadRequest, CodeInvalidRequest, "around_id must be a message id")
			}
			q.messageID = v
			continue
		}
		seq, err := strconv.ParseUint(v, 10, 63)
		if err != nil || seq == 0 {
			return q, errorf(http.StatusBadRequest, CodeInvalidRequest, "%s must be a positive integer (a seq)", p.name)
		}
		q.seq = seq
	}
	if given > 1 {
		return q, errorf(http.StatusBadRequest, CodeInvalidRequest, "give at most one of before, after, around and around_id")
	}
	if args.Has("limit") {
		n, err := strconv.Atoi(string(args.Peek("limit")))
		if err != nil || n < 1 || n > store.MaxPageLimit {
			return q, errorf(http.StatusBadRequest, CodeInvalidRequest, "limit must be 1-%d", store.MaxPageLimit)
		}
		q.limit = n
	}
	return q, nil
}

// visiblePage reads page p of m's conversation, keeping only what m may see (m.Sees): the events
// of each of m's membership intervals. It reads interval by interval, newest first for a
// backward page and oldest first for a forward one, each read narrowed to the interval (store.Page
// takes Before or After but not both, so the bound it cannot take is applied by filtering, which
// only trims the far end of that read), until the page is full or the intervals run out. So a
// page shorter than its limit still means that nothing further is visible that way, gaps
// between intervals included.
func (s *Server) visiblePage(ctx context.Context, m store.Member, p store.Page) ([]store.Message, error) {
	ivs := m.Intervals()
	limit := p.Limit
	if limit == 0 {
		limit = store.DefaultPageLimit
	}
	var out []store.Message
	read := func(iv store.Interval, q store.Page) (bool, error) {
		for {
			q.Limit = limit - len(out)
			msgs, err := s.timeline.Page(ctx, m.ConversationID, q)
			if err != nil {
				return false, err
			}
			n := len(msgs)
			var edge uint64 // where the next read of this interval starts
			if n > 0 {
				edge = msgs[n-1].Seq // going back: the oldest read
				if q.Forward() {
					edge = msgs[0].Seq // going forward: the newest read
				}
			}
			kept := slices.DeleteFunc(msgs, func(x store.Message) bool { return !iv.Sees(x.Seq) || !s.consents(m, x) })
			if q.Forward() {
				out = append(kept, out...) // a later interval (or read) is newer
			} else {
				out = append(out, kept...)
			}
			if len(out) >= limit {
				return true, nil
			}
			// A full read that consent thinned: read on within the interval.
			if n < q.Limit || (q.Forward() && iv.LeftSeq != 0 && edge >= iv.LeftSeq) || (!q.Forward() && edge <= iv.JoinedSeq+1) {
				return false, nil
			}
			if q.Forward() {
				q.After, q.Oldest = edge, false
			} else {
				q.Before = edge
			}
		}
	}
	if p.Forward() {
		for _, iv := range ivs {
			if iv.LeftSeq != 0 && iv.LeftSeq <= p.After {
				continue
			}
			if full, err := read(iv, store.Page{After: max(p.After, iv.JoinedSeq), Oldest: true}); err != nil || full {
				return out, err
			}
		}
		return out, nil
	}
	for i := len(ivs) - 1; i >= 0; i-- {
		iv := ivs[i]
		if p.Before != 0 && p.Before <= iv.JoinedSeq+1 {
			continue
		}
		q := store.Page{Before: p.Before}
		if iv.LeftSeq != 0 && (q.Before == 0 || q.Before > iv.LeftSeq+1) {
			q.Before = iv.LeftSeq + 1
		}
		if full, err := read(iv, q); err != nil || full {
			return out, err
		}
	}
	return out, nil
}

// consents reports whether consent lets member m see event x (held requests, blocks): every
// event but a membership change is judged by its sender.
func (s *Server) consents(m store.Member, x store.Message) bool {
	return x.Kind == streams.KindMember || s.consent.SeesMessage(m.UserID, x.SenderID, m.ConversationID)
}

// aroundPage is up to limit events around seq that m may see, newest first: store.Around's
// shape over visiblePage. seq is first moved into the span of m's intervals.
func (s *Server) aroundPage(ctx context.Context, m store.Member, seq uint64, limit int) ([]store.Message, error) {
	ivs := m.Intervals()
	if len(ivs) == 0 {
		return nil, nil
	}
	seq = max(seq, ivs[0].JoinedSeq+1)
	if last := ivs[len(ivs)-1]; last.LeftSeq != 0 {
		seq = min(seq, last.LeftSeq)
	}
	return store.AroundWith(ctx, func(ctx context.Context, p store.Page) ([]store.Message, error) {
		return s.visiblePage(ctx, m, p)
	}, seq, limit)
}

var errMessageNotFound = errorf(http.StatusNotFound, CodeMessageNotFound, "no such message")

// messageSeq is the seq of message id in m's conversation, found in the store or, while the
// persister lags, in the stream. A message m may not see is answered like one that does not
// exist.
func (s *Server) messageSeq(ctx context.Context, m store.Member, id string) (uint64, error) {
	seq, err := s.storedSeq(ctx, m.ConversationID, id)
	if err != nil {
		return 0, err
	}
	if seq == 0 {
		// Not stored: look in the part of the stream the persister has not acknowledged. If it
		// was persisted after the first look, the marks now say so and the store has it.
		if seq, err = s.streamSeq(ctx, m.ConversationID, id); err != nil {
			return 0, err
		}
		if seq == 0 {
			if seq, err = s.storedSeq(ctx, m.ConversationID, id); err != nil {
				return 0, err
			}
		}
	}
	if seq == 0 || !m.Sees(seq) {
		return 0, errMessageNotFound
	}
	return seq, nil
}

// storedSeq is the seq of a stored message, 0 if the store does not have it.
func (s *Server) storedSeq(ctx context.Context, conversationID, id string) (uint64, error) {
	msg, err := s.store.MessageByID(ctx, conversationID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("message %s of %s: %w", id, conversationID, err)
	}
	return msg.Seq, nil
}

var errStop = errors.New("stop")

// streamSeq is the seq of message id among the conversation's events that the persister has not
// yet acknowledged, 0 if it is not there.
func (s *Server) streamSeq(ctx context.Context, conversationID, id string) (uint64, error) {
	marks, err := s.timeline.Marks(ctx)
	if err != nil {
		return 0, err
	}
	var seq uint64
	err = s.timeline.Range(ctx, marks, conversationID, marks.Stored, marks.Head, func(msg store.Message) error {
		if msg.ID == id {
			seq = msg.Seq
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, fmt.Errorf("find message %s of %s in stream: %w", id, conversationID, err)
	}
	return seq, nil
}
