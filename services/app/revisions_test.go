package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

// revised is an event frame with the fields of edits and deletes.
type revised struct {
	Type     string `json:"type"`
	Seq      uint64 `json:"seq"`
	Text     string `json:"text"`
	EditedAt int64  `json:"edited_at"`
	Deleted  bool   `json:"deleted"`
	SenderID string `json:"sender_id"`
	Target   *struct {
		Seq       uint64 `json:"seq"`
		MessageID string `json:"message_id"`
	} `json:"target"`
}

func decodeRevised(t *testing.T, f apptest.Frame) revised {
	t.Helper()
	var r revised
	if err := json.Unmarshal(f.Raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func edit(ws *apptest.WS, conv, cmid string, target uint64, text string) apptest.Frame {
	ws.T.Helper()
	ws.Send(protocol.ClientFrame{Type: protocol.TypeEdit, ConversationID: conv, ClientMsgID: cmid, TargetSeq: target, Text: text})
	return ws.NextOfAny(wait, protocol.TypeAck, protocol.TypeError)
}

func del(ws *apptest.WS, conv, cmid string, target uint64, forWhom string) apptest.Frame {
	ws.T.Helper()
	ws.Send(protocol.ClientFrame{Type: protocol.TypeDelete, ConversationID: conv, ClientMsgID: cmid, TargetSeq: target, For: forWhom})
	return ws.NextOfAny(wait, protocol.TypeAck, protocol.TypeError)
}

// nextRevision returns the next edit, delete or hide frame.
func nextRevision(t *testing.T, ws *apptest.WS) revised {
	t.Helper()
	return decodeRevised(t, ws.NextOfAny(wait, protocol.TypeEdit, protocol.TypeDelete, protocol.TypeHide))
}

func wantRefused(t *testing.T, f apptest.Frame, code protocol.Code, what string) {
	t.Helper()
	if f.Type != protocol.TypeError || f.Code != string(code) {
		t.Fatalf("%s: got %+v, want error %s", what, f, code)
	}
}

// history is the caller's newest page of conv, decoded with the revision fields.
func history(s *apptest.System, u apptest.User, conv string) []revised {
	s.T.Helper()
	var out struct {
		Messages []revised `json:"messages"`
	}
	s.Do("GET", "/v1/conversations/"+conv+"/messages?limit=200", u.Token, nil, http.StatusOK, &out)
	return out.Messages
}

func at(msgs []revised, seq uint64) revised {
	for _, m := range msgs {
		if m.Seq == seq {
			return m
		}
	}
	return revised{}
}

// TestEditAndDeleteReachEveryDeviceSyncAndHistory: only the sender edits, a retry is one edit,
// a deleted message cannot be edited, and every device, a device that syncs from zero, history,
// the store, unread counts and search all show the latest text or the tombstone.
func TestEditAndDeleteReachEveryDeviceSyncAndHistory(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a1, a2, b := live(s, alice, "a1"), live(s, alice, "a2"), live(s, bob, "b")
	all := []*apptest.WS{a1, a2, b}

	typo := sendText(a1, conv, "m1", "helo wrld").Seq
	secret := sendText(b, conv, "m2", "the secret plan").Seq
	for _, ws := range all {
		nextEvent(ws)
		nextEvent(ws)
	}
	if got := unread(s, alice, conv); got.Unread != 1 {
		t.Fatalf("alice's unread before the delete: %+v, want 1", got)
	}

	wantRefused(t, edit(b, conv, "e-bob", typo, "not yours"), protocol.CodeNotAllowed, "bob edits alice's message")
	wantRefused(t, del(b, conv, "d-bob", typo, ""), protocol.CodeNotAllowed, "bob deletes alice's message in a direct conversation")
	wantRefused(t, edit(a1, conv, "e-x", secret+100, "nothing there"), protocol.CodeMessageNotFound, "edit of a seq with no message")

	ack := edit(a1, conv, "e1", typo, "hello world")
	if ack.Type != protocol.TypeAck || ack.Seq <= secret {
		t.Fatalf("edit: %+v", ack)
	}
	if again := edit(a1, conv, "e1", typo, "hello world"); again.Type != protocol.TypeAck || again.Seq != ack.Seq || !again.Duplicate {
		t.Fatalf("retried edit: %+v, want the first ack (seq %d) as a duplicate", again, ack.Seq)
	}
	for _, ws := range all {
		r := nextRevision(t, ws)
		if r.Type != protocol.TypeEdit || r.Seq != ack.Seq || r.Text != "hello world" || r.EditedAt == 0 || r.Target == nil || r.Target.Seq != typo {
			t.Fatalf("live edit: %+v", r)
		}
	}
	delAck := del(b, conv, "d1", secret, protocol.DeleteForEveryone)
	if delAck.Type != protocol.TypeAck {
		t.Fatalf("delete: %+v", delAck)
	}
	for _, ws := range all {
		r := nextRevision(t, ws)
		if r.Type != protocol.TypeDelete || !r.Deleted || r.Text != "" || r.Target == nil || r.Target.Seq != secret {
			t.Fatalf("live delete: %+v", r)
		}
	}
	wantRefused(t, edit(b, conv, "e2", secret, "back again"), protocol.CodeMessageDeleted, "edit of a deleted message")

	s.WaitPersisted(delAck.Seq)
	page, err := s.Run.Store.Messages(t.Context(), conv, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page {
		if m.Text == "the secret plan" || m.Text == "helo wrld" {
			t.Fatalf("the store still holds an old text at %d: %+v", m.Seq, m)
		}
	}
	for _, u := range []apptest.User{alice, bob} {
		h := history(s, u, conv)
		if m := at(h, typo); m.Text != "hello world" || m.EditedAt == 0 || m.Deleted {
			t.Errorf("%s's history of the edited message: %+v", u.Handle, m)
		}
		if m := at(h, secret); m.Text != "" || !m.Deleted {
			t.Errorf("%s's history of the deleted message: %+v", u.Handle, m)
		}
		if m := at(h, delAck.Seq); m.Type != protocol.TypeDelete || m.Target == nil || m.Target.Seq != secret {
			t.Errorf("%s's history of the delete: %+v", u.Handle, m)
		}
	}
	if got := unread(s, alice, conv); got.Unread != 0 {
		t.Errorf("alice's unread after bob deleted his message: %+v, want 0", got)
	}

	// A device that syncs from zero gets the latest state and the revisions.
	var zero uint64
	a3 := apptest.Dial(t, apptest.WSURLFor(s.WSURL, alice.Token, "a3", &zero))
	byseq := map[uint64]revised{}
	for {
		f := a3.NextOfAny(wait, protocol.TypeMessage, protocol.TypeEdit, protocol.TypeDelete, protocol.TypeSynced)
		if f.Type == protocol.TypeSynced {
			break
		}
		byseq[f.Seq] = decodeRevised(t, f)
	}
	if m := byseq[typo]; m.Text != "hello world" || m.EditedAt == 0 {
		t.Errorf("synced edited message: %+v", m)
	}
	if m := byseq[secret]; m.Text != "" || !m.Deleted {
		t.Errorf("synced deleted message: %+v", m)
	}
	if m := byseq[ack.Seq]; m.Type != protocol.TypeEdit || m.Text != "hello world" {
		t.Errorf("synced edit: %+v", m)
	}
	if m := byseq[delAck.Seq]; m.Type != protocol.TypeDelete || !m.Deleted {
		t.Errorf("synced delete: %+v", m)
	}

	// Search finds the new text only, and nothing of the deleted message.
	search := func(q string) int {
		var res struct {
			Hits []json.RawMessage `json:"hits"`
		}
		s.Do("GET", "/v1/search?q="+url.QueryEscape(q), alice.Token, nil, http.StatusOK, &res)
		return len(res.Hits)
	}
	waitFor(t, func() bool { return search("hello") == 1 }, "the edited text to be found")
	if n := search("helo"); n != 0 {
		t.Errorf("the text before the edit is found: %d hits", n)
	}
	if n := search("secret"); n != 0 {
		t.Errorf("the deleted text is found: %d hits", n)
	}
}

// TestEditWindowAndGroupAdminDelete: an edit after the window is refused (frame and HTTP); in a
// group its owner and its admins may delete anyone's message for everyone, a member only their own.
func TestEditWindowAndGroupAdminDelete(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) {
		c.Gateway.EditWindow, c.API.EditWindow = 1, 1 // a nanosecond: every edit comes too late
	})
	alice, bob, carol := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("carol")
	g := createGroup(s, alice, "trip", bob, carol)
	conv := g.Conversation.ID
	a, b, c := live(s, alice, "a"), live(s, bob, "b"), live(s, carol, "c")
	seq := sendText(c, conv, "m1", "carol's message").Seq
	wantRefused(t, edit(c, conv, "e1", seq, "too late"), protocol.CodeEditExpired, "edit after the window")
	wantError(t, s, "PATCH", fmt.Sprintf("/v1/conversations/%s/messages/%d", conv, seq), carol.Token,
		map[string]string{"client_msg_id": "e2", "text": "too late"}, http.StatusForbidden, protocol.CodeEditExpired)

	wantRefused(t, del(b, conv, "d1", seq, ""), protocol.CodeNotAllowed, "a member deletes another's message")
	if f := del(a, conv, "d2", seq, protocol.DeleteForEveryone); f.Type != protocol.TypeAck {
		t.Fatalf("the owner deletes a member's message: %+v", f)
	}
	for _, ws := range []*apptest.WS{a, b, c} {
		if r := nextRevision(t, ws); r.Type != protocol.TypeDelete || r.Target.Seq != seq {
			t.Fatalf("delete by the owner: %+v", r)
		}
	}
	// An admin may too, once promoted.
	other := sendText(c, conv, "m3", "carol again").Seq
	wantRefused(t, del(b, conv, "d5", other, ""), protocol.CodeNotAllowed, "a member deletes another's message")
	s.Do("PUT", "/v1/conversations/"+conv+"/members/"+bob.ID+"/role", alice.Token, map[string]string{"role": "admin"}, http.StatusOK, nil)
	if f := del(b, conv, "d6", other, protocol.DeleteForEveryone); f.Type != protocol.TypeAck {
		t.Fatalf("an admin deletes a member's message: %+v", f)
	}
	for _, ws := range []*apptest.WS{a, b, c} {
		if r := nextRevision(t, ws); r.Type != protocol.TypeDelete || r.Target.Seq != other {
			t.Fatalf("delete by an admin: %+v", r)
		}
	}
	// HTTP: a delete is idempotent by its client_msg_id.
	own := sendText(b, conv, "m2", "bob's own").Seq
	path := fmt.Sprintf("/v1/conversations/%s/messages/%d?client_msg_id=d3", conv, own)
	var first, second struct {
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
	}
	s.Do("DELETE", path, bob.Token, nil, http.StatusOK, &first)
	s.Do("DELETE", path, bob.Token, nil, http.StatusOK, &second)
	if first.Seq == 0 || second.Seq != first.Seq || !second.Duplicate {
		t.Fatalf("HTTP delete and its retry: %+v, %+v", first, second)
	}
	wantError(t, s, "DELETE", fmt.Sprintf("/v1/conversations/%s/messages/%d?client_msg_id=d4&for=them", conv, own), bob.Token, nil,
		http.StatusBadRequest, "invalid_request")
}

// TestDeleteForMeIsOnlyMine: a hide reaches only the hider's devices and hides the message in
// the hider's history and unread count alone.
func TestDeleteForMeIsOnlyMine(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a1, a2, b := live(s, alice, "a1"), live(s, alice, "a2"), live(s, bob, "b")
	seq := sendText(b, conv, "m1", "hide me").Seq
	for _, ws := range []*apptest.WS{a1, a2, b} {
		nextEvent(ws)
	}
	hide := del(a1, conv, "h1", seq, protocol.DeleteForMe)
	if hide.Type != protocol.TypeAck {
		t.Fatalf("hide: %+v", hide)
	}
	for _, ws := range []*apptest.WS{a1, a2} {
		if r := nextRevision(t, ws); r.Type != protocol.TypeHide || !r.Deleted || r.Target.Seq != seq {
			t.Fatalf("hide on alice's device: %+v", r)
		}
	}
	after := sendText(b, conv, "m2", "after").Seq
	if f := nextEvent(b); f.Seq != after { // bob never hears of alice's hide
		t.Fatalf("bob's next event %+v, want the message at %d", f, after)
	}
	if m := at(history(s, alice, conv), seq); !m.Deleted || m.Text != "" {
		t.Errorf("alice's history: %+v", m)
	}
	hb := history(s, bob, conv)
	if m := at(hb, seq); m.Deleted || m.Text != "hide me" {
		t.Errorf("bob's history: %+v", m)
	}
	if m := at(hb, hide.Seq); m.Type != "" {
		t.Errorf("bob's history shows alice's hide: %+v", m)
	}
	if got := unread(s, alice, conv); got.Unread != 1 { // "after" only
		t.Errorf("alice's unread: %+v, want 1", got)
	}
	// Search: bob still finds it, alice does not.
	found := func(u apptest.User) int {
		var res struct {
			Hits []json.RawMessage `json:"hits"`
		}
		s.Do("GET", "/v1/search?q=hide", u.Token, nil, http.StatusOK, &res)
		return len(res.Hits)
	}
	s.WaitPersisted(after)
	waitFor(t, func() bool { return found(bob) == 1 }, "bob to find the message")
	if n := found(alice); n != 0 {
		t.Errorf("alice finds the message she deleted for herself: %d hits", n)
	}
}

func wantError(t *testing.T, s *apptest.System, method, path, token string, body any, status int, code protocol.Code) {
	t.Helper()
	got, raw := apptest.Request(t, method, s.APIURL+path, token, body)
	var e struct {
		Error struct {
			Code protocol.Code `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	if got != status || e.Error.Code != code {
		t.Fatalf("%s %s: %d %s, want %d %s", method, path, got, raw, status, code)
	}
}

// TestWelcomeTellsTheEditWindow: welcome carries the edit window in milliseconds, rounded up (a
// window under a millisecond is not "0: no limit"), and 0 for no limit.
func TestWelcomeTellsTheEditWindow(t *testing.T) {
	for _, c := range []struct {
		window time.Duration
		want   int64
	}{{90 * time.Second, 90_000}, {1, 1}, {0, 0}} {
		s := apptest.Start(t, func(cfg *app.Config) { cfg.Gateway.EditWindow, cfg.API.EditWindow = c.window, c.window })
		alice := s.SignUp("alice")
		ws := apptest.Dial(t, apptest.WSURLFor(s.WSURL, alice.Token, "a", nil))
		var w protocol.Welcome
		if err := json.Unmarshal(ws.NextOf(protocol.TypeWelcome, wait).Raw, &w); err != nil {
			t.Fatal(err)
		}
		if w.EditWindowMS != c.want {
			t.Errorf("edit window %v: welcome says edit_window_ms %d, want %d", c.window, w.EditWindowMS, c.want)
		}
	}
}

// TestRevisionRetriedAfterTheDuplicateWindowIsOne: an edit, a delete and a hide retried long
// after their first attempt (past JetStream's duplicate window, marked resend like the SDKs'
// retries), and an HTTP edit and delete retried with the same client_msg_id, are each answered
// with the first ack as a duplicate, and no device gets a second event.
func TestRevisionRetriedAfterTheDuplicateWindowIsOne(t *testing.T) {
	const window = 500 * time.Millisecond
	s := apptest.Start(t, func(c *app.Config) { c.Streams.DuplicateWindow = window })
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a, b := live(s, alice, "a"), live(s, bob, "b")
	var targets []uint64
	for i := range 5 {
		targets = append(targets, sendText(a, conv, fmt.Sprintf("m%d", i), fmt.Sprintf("text %d", i)).Seq)
	}
	frames := []protocol.ClientFrame{
		{Type: protocol.TypeEdit, ConversationID: conv, ClientMsgID: "e1", TargetSeq: targets[0], Text: "edited"},
		{Type: protocol.TypeDelete, ConversationID: conv, ClientMsgID: "d1", TargetSeq: targets[1]},
		{Type: protocol.TypeDelete, ConversationID: conv, ClientMsgID: "h1", TargetSeq: targets[2], For: protocol.DeleteForMe},
	}
	requests := []struct {
		method, path string
		body         any
	}{
		{"PATCH", fmt.Sprintf("/v1/conversations/%s/messages/%d", conv, targets[3]), map[string]string{"client_msg_id": "e2", "text": "edited over HTTP"}},
		{"DELETE", fmt.Sprintf("/v1/conversations/%s/messages/%d?client_msg_id=d2", conv, targets[4]), nil},
	}
	var firsts []uint64
	for _, f := range frames {
		a.Send(f)
		ack := a.NextOfAny(wait, protocol.TypeAck, protocol.TypeError)
		if ack.Type != protocol.TypeAck || ack.Duplicate {
			t.Fatalf("%s %s: %+v", f.Type, f.ClientMsgID, ack)
		}
		firsts = append(firsts, ack.Seq)
	}
	type answer struct {
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
	}
	for _, r := range requests {
		var first answer
		s.Do(r.method, r.path, alice.Token, r.body, http.StatusOK, &first)
		if first.Seq == 0 || first.Duplicate {
			t.Fatalf("%s %s: %+v", r.method, r.path, first)
		}
		firsts = append(firsts, first.Seq)
	}
	s.WaitPersisted(slices.Max(firsts))
	time.Sleep(3 * window) // JetStream forgets the ids; the store keeps them

	for i, f := range frames {
		f.Resend = true
		a.Send(f)
		if ack := a.NextOfAny(wait, protocol.TypeAck, protocol.TypeError); ack.Type != protocol.TypeAck || !ack.Duplicate || ack.Seq != firsts[i] {
			t.Errorf("retried %s %s: %+v, want the first ack (seq %d) as a duplicate", f.Type, f.ClientMsgID, ack, firsts[i])
		}
	}
	for i, r := range requests {
		var again answer
		s.Do(r.method, r.path, alice.Token, r.body, http.StatusOK, &again)
		if !again.Duplicate || again.Seq != firsts[len(frames)+i] {
			t.Errorf("retried %s %s: %+v, want seq %d as a duplicate", r.method, r.path, again, firsts[len(frames)+i])
		}
	}
	marker := sendText(a, conv, "marker", "marker").Seq
	// Bob: the five messages, the two edits and two deletes (not alice's hide), once each.
	var got []uint64
	for {
		f := b.NextOfAny(wait, protocol.TypeMessage, protocol.TypeEdit, protocol.TypeDelete, protocol.TypeHide)
		if f.Seq == marker {
			break
		}
		got = append(got, f.Seq)
	}
	want := append(slices.Clone(targets), firsts[0], firsts[1], firsts[3], firsts[4])
	if !slices.Equal(got, want) {
		t.Errorf("bob received %v, want %v", got, want)
	}
}

// TestAnHTTPEditRetriedWhileThePersisterLagsIsOne: an HTTP edit retried after the duplicate
// window, its first attempt still unstored (the persister's consumer paused), is answered with
// the first attempt as a duplicate: the API finds it in the stream, not only in the store.
func TestAnHTTPEditRetriedWhileThePersisterLagsIsOne(t *testing.T) {
	const window = 300 * time.Millisecond
	s := apptest.Start(t, func(c *app.Config) { c.Streams.DuplicateWindow = window })
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := live(s, alice, "a")
	seq := sendText(a, conv, "m1", "typo").Seq
	s.WaitPersisted(seq)
	js, err := jetstream.New(s.Run.NC)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PauseConsumer(ctx, streams.ChatStream, streams.PersisterConsumer, time.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/v1/conversations/%s/messages/%d", conv, seq)
	var first, second struct {
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
	}
	edit := map[string]string{"client_msg_id": "e1", "text": "fixed"}
	s.Do("PATCH", path, alice.Token, edit, http.StatusOK, &first)
	time.Sleep(3 * window) // JetStream forgets the id; the paused persister has not stored it
	s.Do("PATCH", path, alice.Token, edit, http.StatusOK, &second)
	if first.Seq == 0 || second.Seq != first.Seq || !second.Duplicate {
		t.Fatalf("HTTP edit and its late retry: %+v, %+v", first, second)
	}
}
