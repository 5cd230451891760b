package api

import (
	"github.com/gofiber/fiber/v2"
)

type receiptJSON struct {
	UserID    string `json:"user_id"`
	Delivered uint64 `json:"delivered"`
	Read      uint64 `json:"read"`
}

// receipts: GET /v1/conversations/:id/receipts -> {members: [{user_id, delivered, read}],
// delivered_to_all, read_by_all}: every current member's watermarks, and the highest seqs that
// every member other than the caller has received and read. Current members only; the marks of
// a member whose activity consent hides from the caller read 0 (consent.Table.SeesActivity).
func (s *Server) receipts(c *fiber.Ctx) error {
	me, err := s.member(c, true)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	members, err := s.activeMembers(ctx, me.ConversationID)
	if err != nil {
		return err
	}
	marks, err := s.store.Watermarks(ctx, me.ConversationID)
	if err != nil {
		return err
	}
	byUser := map[string]receiptJSON{}
	for _, w := range marks {
		byUser[w.UserID] = receiptJSON{UserID: w.UserID, Delivered: w.Delivered, Read: w.Read}
	}
	out := make([]receiptJSON, 0, len(members))
	var deliveredAll, readAll uint64
	first := true
	for _, m := range members {
		r := byUser[m.UserID]
		if !s.consent.SeesActivity(me.UserID, m.UserID, me.ConversationID) {
			r = receiptJSON{} // a request or a block: the other's marks are not the caller's to see
		}
		r.UserID = m.UserID
		out = append(out, r)
		if m.UserID == me.UserID {
			continue
		}
		if first {
			deliveredAll, readAll, first = r.Delivered, r.Read, false
		}
		deliveredAll, readAll = min(deliveredAll, r.Delivered), min(readAll, r.Read)
	}
	return c.JSON(fiber.Map{"members": out, "delivered_to_all": deliveredAll, "read_by_all": readAll})
}
