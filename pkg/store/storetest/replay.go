package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
)

// write is one write of a scenario. Writes with the same key replace the same record, so their
// order matters and a replay keeps it; writes with keys of their own (messages, watermark
// advances, device sightings) may be replayed in any order.
type write struct {
	key    string
	insert *store.Message // an InsertMessage, checked by the runner
	do     func(s store.Store, t *testing.T) error
}

// scenario is a small chat history in stream order, and the ids it touches.
type scenario struct {
	writes []write
	users  []string
	handle map[string]string
	convs  []string
	msgs   []store.Message // every insert, deduped ones included
}

func newScenario() *scenario {
	sc := &scenario{handle: map[string]string{}}
	add := func(key string, do func(s store.Store, t *testing.T) error) {
		sc.writes = append(sc.writes, write{key: key, do: do})
	}
	for i, u := range []string{"u1", "u10", "u2", "u3"} {
		user := store.User{ID: u, Handle: "h-" + u, DisplayName: "User " + u, PasswordHash: []byte{byte(i), 0, 0xfe}, CreatedAt: at(uint64(i))}
		sc.users, sc.handle[u] = append(sc.users, u), user.Handle
		add("user/"+u, func(s store.Store, t *testing.T) error { return s.CreateUser(t.Context(), user) })
	}
	add("user/u2", func(s store.Store, t *testing.T) error { return s.UpdateProfile(t.Context(), "u2", "Second name") })
	add("user/u2", func(s store.Store, t *testing.T) error { return s.UpdateProfile(t.Context(), "u2", "Third name 🎉") })

	convs := []store.Conversation{
		{ID: "d", Kind: store.Direct, CreatedBy: "u1", CreatedAt: at(10)},
		{ID: "g1", Kind: store.Group, Name: "first name", CreatedBy: "u1", CreatedAt: at(11)},
		{ID: "g10", Kind: store.Group, Name: "ten", CreatedBy: "u10", CreatedAt: at(12)},
	}
	for _, c := range convs {
		sc.convs = append(sc.convs, c.ID)
		add("conv/"+c.ID, func(s store.Store, t *testing.T) error { return s.PutConversation(t.Context(), c) })
	}
	putMember := func(m store.Member) {
		m.JoinedAt = at(m.JoinedSeq)
		add("mem/"+m.ConversationID+"/"+m.UserID, func(s store.Store, t *testing.T) error { return s.PutMember(t.Context(), m) })
	}
	putMember(store.Member{ConversationID: "d", UserID: "u1", Role: "member"})
	putMember(store.Member{ConversationID: "d", UserID: "u2", Role: "member"})
	putMember(store.Member{ConversationID: "g1", UserID: "u1", Role: "owner"})
	putMember(store.Member{ConversationID: "g1", UserID: "u10", Role: "member"})
	putMember(store.Member{ConversationID: "g10", UserID: "u10", Role: "owner"})
	putMember(store.Member{ConversationID: "g10", UserID: "u1", Role: "member"})
	renamed := convs[1]
	renamed.Name = "second name"
	add("conv/g1", func(s store.Store, t *testing.T) error { return s.PutConversation(t.Context(), renamed) })

	senders := map[string][]string{"d": {"u1", "u2"}, "g1": {"u1", "u10"}, "g10": {"u10", "u1"}}
	for seq := uint64(1); seq <= 120; seq++ {
		conv := sc.convs[seq%3]
		sender := senders[conv][seq%2]
		m := msg(conv, seq*1000+seq%7, sender, fmt.Sprintf("cm-%d", seq))
		switch {
		case seq == 31 || seq == 82: // u2 joins g1, later leaves
			m = msg("g1", seq*1000, "u1", "")
			m.Kind, m.Text, m.Member = "member", "", []byte(fmt.Sprintf(`{"action":"seq%d","users":["u2"]}`, seq))
			if seq == 31 {
				putMember(store.Member{ConversationID: "g1", UserID: "u2", Role: "member", JoinedSeq: m.Seq})
			} else {
				putMember(store.Member{ConversationID: "g1", UserID: "u2", Role: "member", JoinedSeq: 31000, LeftSeq: m.Seq})
			}
		case seq%10 == 0: // a retry of an earlier send by the same sender: deduped
			prev := sc.msgs[len(sc.msgs)-2]
			m = msg(prev.ConversationID, seq*1000+5, prev.SenderID, prev.ClientMsgID)
		case seq%11 == 0:
			m.ClientMsgID = ""
		}
		sc.msgs = append(sc.msgs, m)
		sc.writes = append(sc.writes, write{key: fmt.Sprintf("msg/%d", seq), insert: &m})
	}

	i := 0
	advance := func(c, u string, d, r uint64) {
		i++
		w := store.Watermark{ConversationID: c, UserID: u, Delivered: d, Read: r}
		add(fmt.Sprintf("wm/%d", i), func(s store.Store, t *testing.T) error {
			_, err := s.AdvanceWatermark(t.Context(), w)
			return err
		})
	}
	advance("d", "u1", 5000, 3000)
	advance("d", "u1", 60000, 0)
	advance("d", "u1", 30000, 59000)
	advance("d", "u2", 0, 1<<40)
	advance("g1", "u1", 100000, 90000)
	advance("g1", "u2", 81000, 40000)
	advance("g10", "u10", 1<<33, 1<<33)

	putDevice := func(key string, d store.Device) {
		add(key, func(s store.Store, t *testing.T) error { return s.PutDevice(t.Context(), d) })
	}
	for j, seen := range []uint64{50, 20, 90, 10} {
		putDevice(fmt.Sprintf("seen/%d", j), store.Device{UserID: "u1", DeviceID: "phone", Platform: "ios", CreatedAt: at(1), LastSeen: at(seen)})
	}
	putDevice("dev/u1/web", store.Device{UserID: "u1", DeviceID: "web", Platform: "web", CreatedAt: at(2), LastSeen: at(2)})
	putDevice("dev/u2/tablet", store.Device{UserID: "u2", DeviceID: "tablet", Platform: "android", CreatedAt: at(3), LastSeen: at(4)})
	putDevice("dev/u10/old", store.Device{UserID: "u10", DeviceID: "old", Platform: "android", CreatedAt: at(5), LastSeen: at(6)})
	putToken := func(key string, tok store.PushToken) {
		add(key, func(s store.Store, t *testing.T) error { return s.PutPushToken(t.Context(), tok) })
	}
	putToken("push/u1/phone", store.PushToken{UserID: "u1", DeviceID: "phone", Platform: "fcm", Token: "t1", UpdatedAt: at(7)})
	putToken("push/u1/phone", store.PushToken{UserID: "u1", DeviceID: "phone", Platform: "fcm", Token: "t2", UpdatedAt: at(8)})
	putToken("push/u1/web", store.PushToken{UserID: "u1", DeviceID: "web", Platform: "fcm", Token: "t3", UpdatedAt: at(9)})
	putToken("push/u2/tablet", store.PushToken{UserID: "u2", DeviceID: "tablet", Platform: "fcm", Token: "t4", UpdatedAt: at(10)})
	add("push/u2/tablet", func(s store.Store, t *testing.T) error { return s.DeletePushToken(t.Context(), "u2", "tablet") })
	putToken("dev/u10/old", store.PushToken{UserID: "u10", DeviceID: "old", Platform: "fcm", Token: "t5", UpdatedAt: at(11)})
	add("dev/u10/old", func(s store.Store, t *testing.T) error { return s.DeleteDevice(t.Context(), "u10", "old") })
	return sc
}

// shuffled returns the writes in a random order that keeps the order of writes with one key.
func (sc *scenario) shuffled(seed uint64) []write {
	queues := map[string][]write{}
	var keys []string
	for _, w := range sc.writes {
		if _, ok := queues[w.key]; !ok {
			keys = append(keys, w.key)
		}
		queues[w.key] = append(queues[w.key], w)
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	var out []write
	for len(keys) > 0 {
		i := rng.IntN(len(keys))
		q := queues[keys[i]]
		out = append(out, q[0])
		if queues[keys[i]] = q[1:]; len(q) == 1 {
			keys = append(keys[:i], keys[i+1:]...)
		}
	}
	return out
}

// apply runs writes; in a replay (first=false) no insert may insert and each must return what
// the first pass stored.
func (sc *scenario) apply(t *testing.T, s store.Store, writes []write, first bool, stored map[uint64]store.Message) {
	t.Helper()
	for _, w := range writes {
		if w.insert == nil {
			check(t, w.do(s, t), "write %s", w.key)
			continue
		}
		m, inserted, err := s.InsertMessage(t.Context(), *w.insert)
		check(t, err, "insert %s", w.key)
		if first {
			stored[w.insert.Seq] = m
			continue
		}
		if inserted {
			t.Errorf("replayed %s inserted again", w.key)
		}
		wantMessage(t, m, stored[w.insert.Seq], "replayed %s returned", w.key)
	}
}

// reads returns every read of the scenario's records, one line each.
func (sc *scenario) reads(t *testing.T, s store.Store) []string {
	ctx := t.Context()
	var lines []string
	line := func(what string, v any, err error) {
		switch {
		case err == nil:
		case errors.Is(err, store.ErrNotFound):
			v = "ErrNotFound"
		default:
			t.Fatalf("%s: %v", what, err)
		}
		lines = append(lines, fmt.Sprintf("%s = %+v", what, v))
	}
	users := slices.Concat(sc.users, []string{"u", "u4"})
	for _, u := range users {
		v, err := s.UserByID(ctx, u)
		line("UserByID "+u, v, err)
		v, err = s.UserByHandle(ctx, "h-"+u)
		line("UserByHandle h-"+u, v, err)
		ms, err := s.MembershipsOf(ctx, u)
		line("MembershipsOf "+u, ms, err)
		ds, err := s.Devices(ctx, u)
		line("Devices "+u, ds, err)
		ts, err := s.PushTokens(ctx, u)
		line("PushTokens "+u, ts, err)
	}
	for _, c := range slices.Concat(sc.convs, []string{"g", "g2"}) {
		v, err := s.Conversation(ctx, c)
		line("Conversation "+c, v, err)
		ms, err := s.Members(ctx, c)
		line("Members "+c, ms, err)
		ws, err := s.Watermarks(ctx, c)
		line("Watermarks "+c, ws, err)
		for _, u := range users {
			m, err := s.Member(ctx, c, u)
			line("Member "+c+" "+u, m, err)
			w, err := s.Watermark(ctx, c, u)
			line("Watermark "+c+" "+u, w, err)
		}
		for _, p := range []store.Page{{}, {Limit: 7}, {Limit: store.MaxPageLimit}, {Before: 40000, Limit: 5}, {After: 40000, Limit: 5}, {After: 1}} {
			page, err := s.Messages(ctx, c, p)
			line(fmt.Sprintf("Messages %s %+v", c, p), page, err)
		}
		for _, seq := range []uint64{1, 31000, 60001, 1 << 40} {
			page, err := store.Around(ctx, s, c, seq, 5)
			line(fmt.Sprintf("Around %s %d", c, seq), page, err)
		}
	}
	for _, m := range sc.msgs {
		v, err := s.MessageByID(ctx, m.ConversationID, m.ID)
		line("MessageByID "+m.ConversationID+" "+m.ID, v, err)
		v, err = s.MessageByClientID(ctx, m.SenderID, m.ClientMsgID)
		line("MessageByClientID "+m.SenderID+" "+m.ClientMsgID, v, err)
	}
	return lines
}

var replayTests = []test{
	{"AnyOrder", func(t *testing.T, s store.Store) {
		sc := newScenario()
		stored := map[uint64]store.Message{}
		sc.apply(t, s, sc.writes, true, stored)
		want := sc.reads(t, s)
		for _, seed := range []uint64{1, 2, 3} {
			sc.apply(t, s, sc.shuffled(seed), false, stored)
			got := sc.reads(t, s)
			diffs := 0
			for i := range want {
				if got[i] != want[i] {
					if diffs++; diffs <= 5 {
						t.Errorf("replay %d changed a read:\n got %s\nwant %s", seed, got[i], want[i])
					}
				}
			}
			if diffs > 5 {
				t.Errorf("replay %d changed %d reads in all", seed, diffs)
			}
		}
	}},
}
