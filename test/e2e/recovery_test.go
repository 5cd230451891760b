package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/services/recovery"
)

// stateOnStreams reports whether accounts, conversations, devices and push tokens are events on
// a stream natter projects into the store (a projection besides CHAT): then a store rebuilt from
// the streams alone must hold them too.
func stateOnStreams() bool { return len(recovery.Projections()) > 1 }

// TestBackupRestoreReplayAndRebuild is the recovery acceptance test, on the real binary: natter
// runs, users chat in a direct conversation and a group with read receipts and push tokens; a
// backup is made while it serves; more is written; natter is killed with kill -9 and its store
// deleted; the backup is restored and the streams replayed from where it ends, and everything is
// back: logins, conversations, members, messages byte for byte, watermarks, devices, push tokens,
// and a sync from a device's saved cursor returns exactly what it returned before. Then the store
// is deleted with no backup: natter refuses to start, naming --repair, and --repair rebuilds the
// store from the streams alone. A replay run twice changes no byte of the store.
func TestBackupRestoreReplayAndRebuild(t *testing.T) {
	dataDir := t.TempDir()
	storeDir := filepath.Join(dataDir, "store")
	p := StartNatter(t, dataDir)
	api, wsURL := p.Addrs.API, p.Addrs.WebSocket

	// Before the backup: three users, a direct conversation, a group, messages, receipts, push tokens.
	alice, bob, carol := signUp(t, api, "alice"), signUp(t, api, "bob"), signUp(t, api, "carol")
	users := []account{alice, bob, carol}
	var direct, group struct {
		Conversation struct{ ID string } `json:"conversation"`
	}
	doJSON(t, "POST", api+"/v1/conversations/direct", alice.Token, map[string]string{"user_id": bob.ID}, 0, &direct)
	doJSON(t, "POST", api+"/v1/conversations/direct", bob.Token, map[string]string{"user_id": alice.ID}, 0, nil) // accepts
	doJSON(t, "POST", api+"/v1/groups", alice.Token, map[string]any{"name": "team", "member_ids": []string{bob.ID}}, http.StatusCreated, &group)
	doJSON(t, "POST", api+"/v1/conversations/"+group.Conversation.ID+"/accept", bob.Token, nil, http.StatusOK, nil)
	convs := []string{direct.Conversation.ID, group.Conversation.ID}
	for _, u := range users {
		doJSON(t, "PUT", api+"/v1/devices/phone/push-token", u.Token, map[string]string{"platform": "android", "token": "tok-" + u.Handle}, 0, nil)
	}
	aPhone, bLaptop, cPhone := connect(t, wsURL, alice, "phone"), connect(t, wsURL, bob, "laptop"), connect(t, wsURL, carol, "phone")
	send := func(ws *apptest.WS, conv, id, text string) uint64 {
		t.Helper()
		ws.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: id, Text: text})
		return ws.NextOf(protocol.TypeAck, wait).Seq
	}
	var last uint64
	for i := range 6 {
		last = send(aPhone, convs[i%2], fmt.Sprintf("pre%d", i), fmt.Sprintf("before the backup %d: ünïcode ✓ \"quoted\"", i))
	}
	bLaptop.Send(protocol.ClientFrame{Type: protocol.TypeRead, ConversationID: convs[0], UpTo: last - 1})
	// Bob's laptop keeps its cursor where it is now, as a client does.
	cursor := last

	backupDir := filepath.Join(t.TempDir(), "backup")
	out := natter(t, "backup", "--out", backupDir, "--nats-url", p.Addrs.NATS)
	if !strings.Contains(out, "CHAT       covers seq 1..") {
		t.Fatalf("backup summary names no CHAT position:\n%s", out)
	}

	// After the backup: more messages, a member added, a rename, receipts.
	doJSON(t, "POST", api+"/v1/conversations/"+convs[1]+"/members", alice.Token, map[string]any{"user_ids": []string{carol.ID}}, 0, nil)
	doJSON(t, "POST", api+"/v1/conversations/"+convs[1]+"/accept", carol.Token, nil, 0, nil)
	doJSON(t, "PATCH", api+"/v1/conversations/"+convs[1], alice.Token, map[string]string{"name": "team (renamed)"}, 0, nil)
	for i := range 6 {
		send(aPhone, convs[i%2], fmt.Sprintf("post%d", i), fmt.Sprintf("after the backup %d\n\ttabs and 🙂", i))
	}
	last = send(cPhone, convs[1], "carol1", "carol joined")
	// Bob's laptop reads what it received (a client that stopped reading would be closed as slow).
	for seq := uint64(0); seq != last; {
		seq = bLaptop.NextOf(protocol.TypeMessage, wait).Seq
	}
	bLaptop.Send(protocol.ClientFrame{Type: protocol.TypeRead, ConversationID: convs[1], UpTo: last})
	waitReceipt(t, api, bob, convs[1], last) // before the laptop's socket is replaced below
	if stateOnStreams() {
		dave := signUp(t, api, "dave")
		users = append(users, dave)
		doJSON(t, "PUT", api+"/v1/devices/tablet/push-token", dave.Token, map[string]string{"platform": "web", "token": "tok-dave"}, 0, nil)
		connect(t, wsURL, dave, "tablet")
	}
	// What Bob's laptop gets from its saved cursor, before anything is lost.
	wantSync := syncFrom(t, wsURL, bob, "laptop", cursor)
	if len(wantSync) < 7 {
		t.Fatalf("sync from %d gave %d events, want the 7 after it at least", cursor, len(wantSync))
	}
	p.Kill()

	// The reference: the store after kill -9, caught up with the streams by a replay. A second
	// replay changes no byte.
	out = natter(t, "replay", "--apply", "--data-dir", dataDir)
	if !strings.Contains(out, "CHAT") {
		t.Fatalf("replay output:\n%s", out)
	}
	want := snapshot(t, storeDir, users, convs)
	raw := rawDigest(t, storeDir)
	natter(t, "replay", "--apply", "--data-dir", dataDir)
	if again := rawDigest(t, storeDir); again != raw {
		t.Fatal("a second replay changed the store")
	}

	// Lost store, with a backup: restore, replay from where the backup ends.
	if err := os.RemoveAll(storeDir); err != nil {
		t.Fatal(err)
	}
	out = natter(t, "restore", "--from", backupDir, "--data-dir", dataDir)
	if !strings.Contains(out, "replayed seq") {
		t.Fatalf("restore replayed nothing:\n%s", out)
	}
	if got := snapshot(t, storeDir, users, convs); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restore + replay the store differs:\n got %s\nwant %s", js(got), js(want))
	}
	p = StartNatter(t, dataDir)
	checkServes(t, p, users, convs, want, bob, cursor, wantSync, true)
	p.Interrupt()

	// Lost store, no backup: natter refuses to start and names the repair; --repair rebuilds it.
	if err := os.RemoveAll(storeDir); err != nil {
		t.Fatal(err)
	}
	refused := exec.Command(natterBin, "run", "--data-dir", dataDir, "--api-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0",
		"--nats-port", "-1", "--metrics-addr", "")
	msg, err := refused.CombinedOutput()
	if err == nil {
		t.Fatalf("natter started on an empty store while the streams hold events:\n%s", msg)
	}
	// As every start-up error: one line, the last (log lines of the rolled-back start may come before it).
	if lines := nonEmptyLines(string(msg)); !strings.HasPrefix(lines[len(lines)-1], "natter: ") ||
		!strings.Contains(lines[len(lines)-1], "natter run --repair") || !strings.Contains(lines[len(lines)-1], "store is empty") {
		t.Fatalf("the refusal's last line is not one naming natter run --repair:\n%s", msg)
	}
	p = StartNatter(t, dataDir, "--repair")
	if stateOnStreams() {
		checkServes(t, p, users, convs, want, bob, cursor, wantSync, true)
	}
	p.Interrupt()
	got := snapshot(t, storeDir, users, convs)
	if !stateOnStreams() {
		// Only CHAT is on a stream: what it holds (messages, membership, watermarks) is back.
		got, want = got.chatOnly(convs[0]), want.chatOnly(convs[0])
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after a rebuild from the streams the store differs:\n got %s\nwant %s", js(got), js(want))
	}
}

// natter runs the binary with args and returns its standard output; it fails the test on error.
func natter(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(natterBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("natter %s: %v\n%s\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	t.Logf("natter %s:\n%s", args[0], stdout.String())
	return stdout.String()
}

// syncFrom connects a device with a cursor and returns the raw events it gets until synced.
func syncFrom(t *testing.T, wsURL string, a account, device string, cursor uint64) []string {
	t.Helper()
	ws := apptest.Dial(t, apptest.WSURLFor(wsURL, a.Token, device, &cursor))
	ws.NextOf(protocol.TypeWelcome, wait)
	var got []string
	for {
		f := ws.NextOfAny(wait, protocol.TypeMessage, protocol.TypeMember, protocol.TypeSynced)
		if f.Type == protocol.TypeSynced {
			_ = ws.Conn.CloseNow()
			return got
		}
		got = append(got, string(f.Raw))
	}
}

// waitReceipt waits until the caller's read mark of conv reaches upTo (the persister applied it).
func waitReceipt(t *testing.T, api string, a account, conv string, upTo uint64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var r struct {
			Members []struct {
				UserID string `json:"user_id"`
				Read   uint64 `json:"read"`
			} `json:"members"`
		}
		doJSON(t, "GET", api+"/v1/conversations/"+conv+"/receipts", a.Token, nil, 0, &r)
		for _, m := range r.Members {
			if m.UserID == a.ID && m.Read >= upTo {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("read mark of %s in %s never reached %d: %+v", a.Handle, conv, upTo, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkServes checks a running natter against the snapshot: every account logs in with its
// password, sees its conversations, their members and history, and Bob's device gets exactly
// wantSync from its saved cursor.
func checkServes(t *testing.T, p *Process, users []account, convs []string, want storeSnapshot, bob account, cursor uint64, wantSync []string, logins bool) {
	t.Helper()
	api := p.Addrs.API
	for _, u := range users {
		var login struct {
			Token string `json:"token"`
		}
		doJSON(t, "POST", api+"/v1/login", "", map[string]string{"handle": u.Handle, "password": "pw-" + u.Handle + "-long"}, http.StatusOK, &login)
		u.Token = login.Token
		var list struct {
			Conversations []struct {
				ID string `json:"id"`
			} `json:"conversations"`
		}
		doJSON(t, "GET", api+"/v1/conversations", u.Token, nil, 0, &list)
		var ids []string
		for _, c := range list.Conversations {
			ids = append(ids, c.ID)
		}
		sort.Strings(ids)
		var wantIDs []string
		for _, c := range convs {
			for _, m := range want.Members[c] {
				if m.UserID == u.ID && m.Active() {
					wantIDs = append(wantIDs, c)
				}
			}
		}
		sort.Strings(wantIDs)
		if !reflect.DeepEqual(ids, wantIDs) {
			t.Fatalf("%s sees conversations %v, want %v", u.Handle, ids, wantIDs)
		}
		for _, c := range wantIDs {
			var page struct {
				Messages []json.RawMessage `json:"messages"`
			}
			doJSON(t, "GET", api+"/v1/conversations/"+c+"/messages?limit=200", u.Token, nil, 0, &page)
			if len(page.Messages) == 0 {
				t.Fatalf("%s sees no history in %s", u.Handle, c)
			}
		}
	}
	var login struct {
		Token string `json:"token"`
	}
	doJSON(t, "POST", api+"/v1/login", "", map[string]string{"handle": bob.Handle, "password": "pw-" + bob.Handle + "-long"}, http.StatusOK, &login)
	bob.Token = login.Token
	if got := syncFrom(t, p.Addrs.WebSocket, bob, "laptop", cursor); !reflect.DeepEqual(got, wantSync) {
		t.Fatalf("sync from cursor %d:\n got %v\nwant %v", cursor, got, wantSync)
	}
}

// storeSnapshot is what the store holds for the test's users and conversations, read through
// the store's own interface.
type storeSnapshot struct {
	Users         map[string]store.User
	Conversations map[string]store.Conversation
	Members       map[string][]store.Member
	Messages      map[string][]store.Message
	Watermarks    map[string][]store.Watermark
	Devices       map[string][]string // user -> device ids and platforms
	PushTokens    map[string][]store.PushToken
}

// chatOnly keeps what CHAT events make: messages, watermarks and the memberships of groups (a
// direct conversation's two members are not a CHAT event).
func (s storeSnapshot) chatOnly(direct string) storeSnapshot {
	members := maps.Clone(s.Members)
	delete(members, direct)
	return storeSnapshot{Members: members, Messages: s.Messages, Watermarks: s.Watermarks}
}

func snapshot(t *testing.T, dir string, users []account, convs []string) storeSnapshot {
	t.Helper()
	st, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s := storeSnapshot{Users: map[string]store.User{}, Conversations: map[string]store.Conversation{}, Members: map[string][]store.Member{},
		Messages: map[string][]store.Message{}, Watermarks: map[string][]store.Watermark{}, Devices: map[string][]string{}, PushTokens: map[string][]store.PushToken{}}
	must := func(err error) {
		t.Helper()
		if err != nil && !strings.Contains(err.Error(), store.ErrNotFound.Error()) {
			t.Fatal(err)
		}
	}
	for _, u := range users {
		var err error
		s.Users[u.ID], err = st.UserByID(ctx, u.ID)
		must(err)
		ds, err := st.Devices(ctx, u.ID)
		must(err)
		for _, d := range ds {
			s.Devices[u.ID] = append(s.Devices[u.ID], d.DeviceID+"/"+d.Platform)
		}
		s.PushTokens[u.ID], err = st.PushTokens(ctx, u.ID)
		must(err)
	}
	for _, c := range convs {
		var err error
		s.Conversations[c], err = st.Conversation(ctx, c)
		must(err)
		s.Members[c], err = st.Members(ctx, c)
		must(err)
		s.Messages[c], err = st.Messages(ctx, c, store.Page{Limit: store.MaxPageLimit})
		must(err)
		s.Watermarks[c], err = st.Watermarks(ctx, c)
		must(err)
	}
	return s
}

// rawDigest hashes every key and value of the store.
func rawDigest(t *testing.T, dir string) string {
	t.Helper()
	db, err := cpebble.Open(dir, &cpebble.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Fprintf(h, "%x=%x;", it.Key(), it.Value())
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the store is empty")
	}
	return fmt.Sprintf("%x (%d keys)", h.Sum(nil), n)
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRestoreToAnotherMachine: a backup with --streams holds the store and every stream; restored
// into an empty data directory (another machine), natter starts on it and serves everything:
// logins, history and sync.
func TestRestoreToAnotherMachine(t *testing.T) {
	p := StartNatter(t, t.TempDir())
	api, wsURL := p.Addrs.API, p.Addrs.WebSocket
	alice, bob := signUp(t, api, "alice"), signUp(t, api, "bob")
	var direct struct {
		Conversation struct{ ID string } `json:"conversation"`
	}
	doJSON(t, "POST", api+"/v1/conversations/direct", alice.Token, map[string]string{"user_id": bob.ID}, 0, &direct)
	doJSON(t, "POST", api+"/v1/conversations/direct", bob.Token, map[string]string{"user_id": alice.ID}, 0, nil) // accepts
	phone := connect(t, wsURL, alice, "phone")
	for i := range 5 {
		phone.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: direct.Conversation.ID, ClientMsgID: fmt.Sprint(i), Text: fmt.Sprintf("message %d", i)})
		phone.NextOf(protocol.TypeAck, wait)
	}
	want := syncFrom(t, wsURL, bob, "laptop", 0)
	backupDir := filepath.Join(t.TempDir(), "backup")
	out := natter(t, "backup", "--streams", "--out", backupDir, "--nats-url", p.Addrs.NATS)
	if !strings.Contains(out, "stream snapshot") {
		t.Fatalf("no stream snapshot in the summary:\n%s", out)
	}
	p.Interrupt()

	other := t.TempDir()
	out = natter(t, "restore", "--from", backupDir, "--streams", "--data-dir", other)
	if !strings.Contains(out, "CHAT       stream restored") || !strings.Contains(out, "STATE      stream restored") {
		t.Fatalf("streams not restored:\n%s", out)
	}
	p = StartNatter(t, other)
	var login struct {
		Token string `json:"token"`
	}
	doJSON(t, "POST", p.Addrs.API+"/v1/login", "", map[string]string{"handle": "bob", "password": "pw-bob-long"}, http.StatusOK, &login)
	bob.Token = login.Token
	if got := syncFrom(t, p.Addrs.WebSocket, bob, "laptop", 0); !reflect.DeepEqual(got, want) || len(got) != 5 {
		t.Fatalf("sync on the other machine:\n got %v\nwant %v", got, want)
	}
	p.Interrupt()
}
