package storetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
)

var usersTests = []test{
	{"CreateAndRead", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		users := []store.User{
			{ID: "u-alice", Handle: "alice", DisplayName: "Alice", PasswordHash: []byte{0, 1, 2, 0xff}, CreatedAt: at(1)},
			{ID: "u-al", Handle: "al", DisplayName: "Al 🦊", PasswordHash: []byte("hash"), CreatedAt: at(2)},
			{ID: "u-bob", Handle: "bob", DisplayName: "", PasswordHash: nil, CreatedAt: at(3)},
		}
		for _, u := range users {
			check(t, s.CreateUser(ctx, u), "create %s", u.ID)
		}
		for _, u := range users {
			got, err := s.UserByID(ctx, u.ID)
			check(t, err, "user %s", u.ID)
			if !same(got, u) {
				t.Errorf("UserByID(%s) = %+v, want %+v", u.ID, got, u)
			}
			got, err = s.UserByHandle(ctx, u.Handle)
			check(t, err, "user by handle %s", u.Handle)
			if !same(got, u) {
				t.Errorf("UserByHandle(%s) = %+v, want %+v", u.Handle, got, u)
			}
		}
		_, err := s.UserByID(ctx, "u-a")
		wantErr(t, err, store.ErrNotFound, "UserByID(u-a)")
		_, err = s.UserByHandle(ctx, "ali")
		wantErr(t, err, store.ErrNotFound, "UserByHandle(ali)")
		_, err = s.UserByHandle(ctx, "alice2")
		wantErr(t, err, store.ErrNotFound, "UserByHandle(alice2)")
	}},
	{"Conflicts", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		alice := store.User{ID: "u-alice", Handle: "alice", DisplayName: "Alice", PasswordHash: []byte("h"), CreatedAt: at(1)}
		check(t, s.CreateUser(ctx, alice), "create alice")

		err := s.CreateUser(ctx, store.User{ID: "u-carol", Handle: "alice", CreatedAt: at(2)})
		wantErr(t, err, store.ErrConflict, "handle taken by another id")
		_, err = s.UserByID(ctx, "u-carol")
		wantErr(t, err, store.ErrNotFound, "user of a conflicting create")

		err = s.CreateUser(ctx, store.User{ID: "u-alice", Handle: "alice2", CreatedAt: at(3)})
		wantErr(t, err, store.ErrConflict, "id taken with another handle")
		_, err = s.UserByHandle(ctx, "alice2")
		wantErr(t, err, store.ErrNotFound, "handle of a conflicting create")

		check(t, s.CreateUser(ctx, alice), "identical re-create")
		for _, get := range []func() (store.User, error){
			func() (store.User, error) { return s.UserByID(ctx, "u-alice") },
			func() (store.User, error) { return s.UserByHandle(ctx, "alice") },
		} {
			got, err := get()
			check(t, err, "read alice")
			if !same(got, alice) {
				t.Errorf("after conflicts alice = %+v, want %+v", got, alice)
			}
		}
	}},
	{"DeleteUser", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		alice := store.User{ID: "u-alice", Handle: "alice", DisplayName: "Alice", PasswordHash: []byte("h"), CreatedAt: at(1)}
		bob := store.User{ID: "u-bob", Handle: "bob", DisplayName: "Bob", PasswordHash: []byte("b"), CreatedAt: at(2)}
		check(t, s.CreateUser(ctx, alice), "create alice")
		check(t, s.CreateUser(ctx, bob), "create bob")
		check(t, s.DeleteUser(ctx, alice.ID), "delete alice")
		check(t, s.DeleteUser(ctx, alice.ID), "delete alice again")
		check(t, s.DeleteUser(ctx, "u-nobody"), "delete a user that never was")
		_, err := s.UserByID(ctx, alice.ID)
		wantErr(t, err, store.ErrNotFound, "UserByID(deleted)")
		_, err = s.UserByHandle(ctx, alice.Handle)
		wantErr(t, err, store.ErrNotFound, "UserByHandle(deleted)")
		wantErr(t, s.UpdateProfile(ctx, alice.ID, "Back"), store.ErrNotFound, "UpdateProfile(deleted)")
		// A replayed sign-up changes nothing; the handle stays taken.
		check(t, s.CreateUser(ctx, alice), "re-create the deleted user")
		_, err = s.UserByID(ctx, alice.ID)
		wantErr(t, err, store.ErrNotFound, "UserByID(deleted, re-created)")
		err = s.CreateUser(ctx, store.User{ID: "u-mallory", Handle: "alice", CreatedAt: at(3)})
		wantErr(t, err, store.ErrConflict, "the handle of a deleted user")
		got, err := s.UserByID(ctx, bob.ID)
		check(t, err, "bob")
		if !same(got, bob) {
			t.Errorf("bob after alice's deletion = %+v, want %+v", got, bob)
		}
	}},
	{"UpdateProfile", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		alice := store.User{ID: "u-alice", Handle: "alice", DisplayName: "Alice", PasswordHash: []byte("h"), CreatedAt: at(1)}
		bob := store.User{ID: "u-alice1", Handle: "bob", DisplayName: "Bob", PasswordHash: []byte("b"), CreatedAt: at(2)}
		check(t, s.CreateUser(ctx, alice), "create alice")
		check(t, s.CreateUser(ctx, bob), "create bob")
		check(t, s.UpdateProfile(ctx, alice.ID, "Alice Liddell ✨"), "update profile")
		want := alice
		want.DisplayName = "Alice Liddell ✨"
		got, err := s.UserByID(ctx, alice.ID)
		check(t, err, "user")
		if !same(got, want) {
			t.Errorf("UserByID after update = %+v, want %+v", got, want)
		}
		got, err = s.UserByHandle(ctx, alice.Handle)
		check(t, err, "user by handle")
		if !same(got, want) {
			t.Errorf("UserByHandle after update = %+v, want %+v", got, want)
		}
		got, err = s.UserByID(ctx, bob.ID)
		check(t, err, "bob")
		if !same(got, bob) {
			t.Errorf("another user changed: %+v, want %+v", got, bob)
		}
		wantErr(t, s.UpdateProfile(ctx, "u-nobody", "x"), store.ErrNotFound, "UpdateProfile(unknown)")
		_, err = s.UserByID(ctx, "u-nobody")
		wantErr(t, err, store.ErrNotFound, "user after UpdateProfile(unknown)")
	}},
}

var conversationsTests = []test{
	{"PutGetReplace", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		c1 := store.Conversation{ID: "c1", Kind: store.Group, Name: "Tea party 🫖", CreatedBy: "u-alice", CreatedAt: at(1)}
		c10 := store.Conversation{ID: "c10", Kind: store.Direct, CreatedBy: "u-bob", CreatedAt: at(2)}
		check(t, s.PutConversation(ctx, c1), "put c1")
		check(t, s.PutConversation(ctx, c10), "put c10")
		for _, want := range []store.Conversation{c1, c10} {
			got, err := s.Conversation(ctx, want.ID)
			check(t, err, "conversation %s", want.ID)
			if !same(got, want) {
				t.Errorf("Conversation(%s) = %+v, want %+v", want.ID, got, want)
			}
		}
		c1.Name = "Mad tea party"
		check(t, s.PutConversation(ctx, c1), "replace c1")
		got, err := s.Conversation(ctx, "c1")
		check(t, err, "conversation c1")
		if !same(got, c1) {
			t.Errorf("replaced Conversation(c1) = %+v, want %+v", got, c1)
		}
		for _, id := range []string{"c", "c100", "c2"} {
			_, err := s.Conversation(ctx, id)
			wantErr(t, err, store.ErrNotFound, "Conversation(%s)", id)
		}
	}},
}

var membersTests = []test{
	{"BothDirections", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		mem := func(c, u string, joined uint64) store.Member {
			return store.Member{ConversationID: c, UserID: u, Role: "member", JoinedSeq: joined, JoinedAt: at(joined)}
		}
		all := []store.Member{
			mem("c1", "u3", 40), mem("c1", "u1", 0), mem("c10", "u1", 7), mem("c1", "u10", 12),
			mem("c1", "u2", 1<<33), mem("c2", "u1", 3), mem("c", "u1", 5), mem("c10", "u2", 9),
			// '-' and '_' sort on either side of '/' and of digits: a key layout with a plain
			// separator gets "u" and "u-1" in the wrong order.
			mem("c1", "u", 1), mem("c1", "u-1", 2), mem("c1", "u_1", 3), mem("c-1", "u1", 4), mem("c_1", "u1", 6),
		}
		all[1].Role = "owner"
		for _, m := range all {
			check(t, s.PutMember(ctx, m), "put member %s/%s", m.ConversationID, m.UserID)
		}
		byConv := func(c string) []store.Member {
			var out []store.Member
			for _, m := range all {
				if m.ConversationID == c {
					out = append(out, m)
				}
			}
			slices.SortFunc(out, func(a, b store.Member) int { return strings.Compare(a.UserID, b.UserID) })
			return out
		}
		byUser := func(u string) []store.Member {
			var out []store.Member
			for _, m := range all {
				if m.UserID == u {
					out = append(out, m)
				}
			}
			slices.SortFunc(out, func(a, b store.Member) int { return strings.Compare(a.ConversationID, b.ConversationID) })
			return out
		}
		verify := func(stage string) {
			t.Helper()
			for _, c := range []string{"c", "c-1", "c_1", "c1", "c10", "c2", "c3"} {
				got, err := s.Members(ctx, c)
				check(t, err, "members of %s", c)
				if want := byConv(c); !sameAll(got, want) {
					t.Errorf("%s: Members(%s) =\n%+v\nwant (ordered by user id)\n%+v", stage, c, got, want)
				}
			}
			for _, u := range []string{"u", "u-1", "u_1", "u1", "u10", "u2", "u3", "u4"} {
				got, err := s.MembershipsOf(ctx, u)
				check(t, err, "memberships of %s", u)
				if want := byUser(u); !sameAll(got, want) {
					t.Errorf("%s: MembershipsOf(%s) =\n%+v\nwant (ordered by conversation id)\n%+v", stage, u, got, want)
				}
			}
			for _, m := range all {
				got, err := s.Member(ctx, m.ConversationID, m.UserID)
				check(t, err, "member %s/%s", m.ConversationID, m.UserID)
				if !same(got, m) {
					t.Errorf("%s: Member(%s, %s) = %+v, want %+v", stage, m.ConversationID, m.UserID, got, m)
				}
			}
		}
		verify("after put")

		// Removal: the same membership again, now with LeftSeq; also a role change.
		all[4].LeftSeq = 1<<33 + 100
		all[0].Role = "admin"
		check(t, s.PutMember(ctx, all[4]), "re-put member")
		check(t, s.PutMember(ctx, all[0]), "re-put member")
		verify("after re-put")
		got, err := s.Member(ctx, "c1", "u2")
		check(t, err, "member c1/u2")
		if got.Active() || !got.Sees(1<<33+100) || got.Sees(1<<33+101) || got.Sees(1<<33) {
			t.Errorf("removed member %+v: Active=%v Sees(left)=%v Sees(left+1)=%v Sees(joined)=%v",
				got, got.Active(), got.Sees(1<<33+100), got.Sees(1<<33+101), got.Sees(1<<33))
		}

		for _, k := range [][2]string{{"c1", "u4"}, {"c1", "u-"}, {"c10", "u10"}, {"c3", "u1"}, {"c-", "u1"}} {
			_, err := s.Member(ctx, k[0], k[1])
			wantErr(t, err, store.ErrNotFound, "Member(%s, %s)", k[0], k[1])
		}
	}},
	{"FullGroup", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		var want []store.Member
		for i := range store.MaxGroupMembers + 1 { // a former member on top of a full group
			m := store.Member{ConversationID: "g", UserID: string(rune('a'+i%26)) + strings.Repeat("x", i/26), Role: "member", JoinedAt: at(uint64(i))}
			if i == 0 {
				m.LeftSeq = 99
			}
			want = append(want, m)
		}
		for _, i := range []int{50, 0, 99, 3} { // out of order
			check(t, s.PutMember(ctx, want[i]), "put member")
		}
		for _, m := range want {
			check(t, s.PutMember(ctx, m), "put member")
		}
		slices.SortFunc(want, func(a, b store.Member) int { return strings.Compare(a.UserID, b.UserID) })
		got, err := s.Members(ctx, "g")
		check(t, err, "members")
		if !sameAll(got, want) {
			t.Errorf("Members(g): %d members, want %d in user id order", len(got), len(want))
		}
	}},
	{"EveryInterval", func(t *testing.T, s store.Store) {
		// A member who left twice and was invited a third time: every interval, the pending
		// invitation and the latest change's seq are kept, in both directions.
		ctx := t.Context()
		m := store.Member{ConversationID: "g", UserID: "u1", Role: "admin", JoinedSeq: 40, LeftSeq: 50, JoinedAt: at(40),
			Earlier:    []store.Interval{{JoinedSeq: 9, LeftSeq: 20}, {JoinedSeq: 1 << 33, LeftSeq: 1<<33 + 5}},
			InvitedSeq: 60, InvitedBy: "u2", ChangedSeq: 60}
		check(t, s.PutMember(ctx, m), "put member")
		got, err := s.Member(ctx, "g", "u1")
		check(t, err, "member")
		if !same(got, m) {
			t.Errorf("Member = %+v, want %+v", got, m)
		}
		mine, err := s.MembershipsOf(ctx, "u1")
		check(t, err, "memberships")
		if !sameAll(mine, []store.Member{m}) {
			t.Errorf("MembershipsOf = %+v, want %+v", mine, m)
		}
		// Joining again moves the interval into Earlier; the record replaces the old one.
		m.Earlier, m.JoinedSeq, m.LeftSeq, m.InvitedSeq, m.InvitedBy, m.ChangedSeq = append(m.Earlier, store.Interval{JoinedSeq: 40, LeftSeq: 50}), 69, 0, 0, "", 70
		check(t, s.PutMember(ctx, m), "re-put member")
		all, err := s.Members(ctx, "g")
		check(t, err, "members")
		if !sameAll(all, []store.Member{m}) {
			t.Errorf("Members = %+v, want %+v", all, m)
		}
		c := store.Conversation{ID: "g", Kind: store.Group, Name: "gone", CreatedBy: "u2", CreatedAt: at(1), DeletedSeq: 1<<33 + 9}
		check(t, s.PutConversation(ctx, c), "put conversation")
		gotc, err := s.Conversation(ctx, "g")
		check(t, err, "conversation")
		if !same(gotc, c) {
			t.Errorf("Conversation = %+v, want %+v", gotc, c)
		}
	}},
	{"SeesAndActive", func(t *testing.T, s store.Store) {
		cases := []struct {
			m      store.Member
			active bool
			sees   map[uint64]bool
		}{
			{store.Member{JoinedSeq: 0}, true, map[uint64]bool{1: true, 1 << 40: true}},
			{store.Member{JoinedSeq: 10}, true, map[uint64]bool{9: false, 10: false, 11: true, 1 << 40: true}},
			{store.Member{JoinedSeq: 10, LeftSeq: 20}, false, map[uint64]bool{10: false, 11: true, 20: true, 21: false}},
			// Re-joined: every interval counts, the gaps do not.
			{store.Member{JoinedSeq: 30, Earlier: []store.Interval{{JoinedSeq: 2, LeftSeq: 5}, {JoinedSeq: 10, LeftSeq: 20}}}, true,
				map[uint64]bool{2: false, 3: true, 5: true, 6: false, 11: true, 20: true, 21: false, 30: false, 31: true}},
			// Invited, never a member: the empty interval at the invitation sees nothing.
			{store.Member{JoinedSeq: 7, LeftSeq: 7, InvitedSeq: 7}, false, map[uint64]bool{1: false, 7: false, 8: false}},
		}
		for _, c := range cases {
			if c.m.Active() != c.active {
				t.Errorf("%+v.Active() = %v", c.m, !c.active)
			}
			for seq, want := range c.sees {
				if c.m.Sees(seq) != want {
					t.Errorf("%+v.Sees(%d) = %v", c.m, seq, !want)
				}
			}
		}
		rejoined := store.Member{JoinedSeq: 30, Earlier: []store.Interval{{JoinedSeq: 2, LeftSeq: 5}, {JoinedSeq: 10, LeftSeq: 20}}}
		for after, want := range map[uint64]uint64{0: 3, 3: 4, 5: 11, 8: 11, 20: 31, 25: 31, 40: 41} {
			if got, ok := rejoined.SeenSince(after); !ok || got != want {
				t.Errorf("SeenSince(%d) = %d, %v; want %d", after, got, ok, want)
			}
		}
		if _, ok := (store.Member{JoinedSeq: 2, LeftSeq: 5}).SeenSince(5); ok {
			t.Error("a former member sees something after they left")
		}
	}},
}

var devicesTests = []test{
	{"PutListDelete", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		phone := store.Device{UserID: "u1", DeviceID: "phone", Platform: "ios", CreatedAt: at(1), LastSeen: at(50)}
		web := store.Device{UserID: "u1", DeviceID: "web", Platform: "web", CreatedAt: at(2), LastSeen: at(2)}
		other := store.Device{UserID: "u10", DeviceID: "phone", Platform: "android", CreatedAt: at(3), LastSeen: at(3)}
		for _, d := range []store.Device{web, phone, other} {
			check(t, s.PutDevice(ctx, d), "put device %s/%s", d.UserID, d.DeviceID)
		}
		list := func(u string, want ...store.Device) {
			t.Helper()
			got, err := s.Devices(ctx, u)
			check(t, err, "devices of %s", u)
			slices.SortFunc(got, func(a, b store.Device) int { return strings.Compare(a.DeviceID, b.DeviceID) })
			if !sameAll(got, want) {
				t.Errorf("Devices(%s) =\n%+v\nwant\n%+v", u, got, want)
			}
		}
		list("u1", phone, web)
		list("u10", other)
		list("u", nil...)

		older := phone
		older.LastSeen = at(20)
		check(t, s.PutDevice(ctx, older), "put device seen earlier")
		list("u1", phone, web)
		phone.LastSeen = at(90)
		check(t, s.PutDevice(ctx, phone), "put device seen later")
		list("u1", phone, web)

		check(t, s.PutPushToken(ctx, store.PushToken{UserID: "u1", DeviceID: "phone", Platform: "fcm", Token: "tok-phone", UpdatedAt: at(4)}), "put token")
		webTok := store.PushToken{UserID: "u1", DeviceID: "web", Platform: "fcm", Token: "tok-web", UpdatedAt: at(5)}
		check(t, s.PutPushToken(ctx, webTok), "put token")
		otherTok := store.PushToken{UserID: "u10", DeviceID: "phone", Platform: "fcm", Token: "tok-other", UpdatedAt: at(6)}
		check(t, s.PutPushToken(ctx, otherTok), "put token")

		check(t, s.DeleteDevice(ctx, "u1", "phone"), "delete device")
		list("u1", web)
		list("u10", other)
		toks, err := s.PushTokens(ctx, "u1")
		check(t, err, "push tokens")
		if !sameAll(toks, []store.PushToken{webTok}) {
			t.Errorf("PushTokens(u1) after DeleteDevice(phone) = %+v, want only %+v", toks, webTok)
		}
		toks, err = s.PushTokens(ctx, "u10")
		check(t, err, "push tokens")
		if !sameAll(toks, []store.PushToken{otherTok}) {
			t.Errorf("PushTokens(u10) = %+v, want %+v", toks, otherTok)
		}
		check(t, s.DeleteDevice(ctx, "u1", "phone"), "delete a deleted device")
		check(t, s.DeleteDevice(ctx, "u9", "none"), "delete an unknown device")
	}},
}

var pushTokensTests = []test{
	{"PutReplaceDelete", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a := store.PushToken{UserID: "u1", DeviceID: "a", Platform: "fcm", Token: "tok-a", UpdatedAt: at(1)}
		b := store.PushToken{UserID: "u1", DeviceID: "b", Platform: "apns", Token: "tok-b", UpdatedAt: at(2)}
		o := store.PushToken{UserID: "u10", DeviceID: "a", Platform: "fcm", Token: "tok-o", UpdatedAt: at(3)}
		for _, tok := range []store.PushToken{b, o, a} {
			check(t, s.PutPushToken(ctx, tok), "put token %s/%s", tok.UserID, tok.DeviceID)
		}
		list := func(u string, want ...store.PushToken) {
			t.Helper()
			got, err := s.PushTokens(ctx, u)
			check(t, err, "push tokens of %s", u)
			slices.SortFunc(got, func(a, b store.PushToken) int { return strings.Compare(a.DeviceID, b.DeviceID) })
			if !sameAll(got, want) {
				t.Errorf("PushTokens(%s) =\n%+v\nwant\n%+v", u, got, want)
			}
		}
		list("u1", a, b)
		list("u10", o)
		a.Token, a.UpdatedAt = "tok-a2", at(10)
		check(t, s.PutPushToken(ctx, a), "replace token")
		list("u1", a, b)
		check(t, s.DeletePushToken(ctx, "u1", "b"), "delete token")
		list("u1", a)
		list("u10", o)
		check(t, s.DeletePushToken(ctx, "u1", "b"), "delete a deleted token")
		list("u2", nil...)
	}},
}

var watermarksTests = []test{
	{"Advance", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		steps := []struct{ d, r, wantD, wantR uint64 }{
			{5, 3, 5, 3},
			{4, 0, 5, 3},   // delivered back: ignored
			{0, 4, 5, 4},   // 0 leaves delivered alone
			{10, 1, 10, 4}, // each mark on its own
			{0, 0, 10, 4},  // nothing
			{1 << 40, 1 << 35, 1 << 40, 1 << 35},
			{1 << 39, 1<<35 + 1, 1 << 40, 1<<35 + 1},
		}
		for _, st := range steps {
			got, err := s.AdvanceWatermark(ctx, store.Watermark{ConversationID: "c1", UserID: "u1", Delivered: st.d, Read: st.r})
			check(t, err, "advance")
			want := store.Watermark{ConversationID: "c1", UserID: "u1", Delivered: st.wantD, Read: st.wantR}
			if got != want {
				t.Errorf("AdvanceWatermark(%d, %d) = %+v, want %+v", st.d, st.r, got, want)
			}
			got, err = s.Watermark(ctx, "c1", "u1")
			check(t, err, "watermark")
			if got != want {
				t.Errorf("Watermark after advance(%d, %d) = %+v, want %+v", st.d, st.r, got, want)
			}
		}
		final := store.Watermark{ConversationID: "c1", UserID: "u1", Delivered: 1 << 40, Read: 1<<35 + 1}
		u2 := store.Watermark{ConversationID: "c1", UserID: "u2", Delivered: 7, Read: 7}
		o := store.Watermark{ConversationID: "c10", UserID: "u1", Delivered: 1, Read: 0}
		for _, w := range []store.Watermark{u2, o} {
			_, err := s.AdvanceWatermark(ctx, w)
			check(t, err, "advance")
		}
		for _, k := range [][2]string{{"c1", "u9"}, {"c", "u1"}, {"c100", "u1"}, {"c1", "u10"}} {
			got, err := s.Watermark(ctx, k[0], k[1])
			check(t, err, "Watermark(%s, %s) of an unknown pair", k[0], k[1])
			if want := (store.Watermark{ConversationID: k[0], UserID: k[1]}); got != want {
				t.Errorf("Watermark(%s, %s) = %+v, want %+v", k[0], k[1], got, want)
			}
		}
		for c, want := range map[string][]store.Watermark{"c1": {final, u2}, "c10": {o}, "c": nil, "c2": nil} {
			got, err := s.Watermarks(ctx, c)
			check(t, err, "watermarks of %s", c)
			slices.SortFunc(got, func(a, b store.Watermark) int { return strings.Compare(a.UserID, b.UserID) })
			if !slices.Equal(got, want) {
				t.Errorf("Watermarks(%s) = %+v, want %+v", c, got, want)
			}
		}
	}},
}
