package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/services/search"
	"github.com/natter-chat/natter/services/search/wire"
	"github.com/natter-chat/natter/streams"
)

// TestKilledSearchLosesAndDoublesNothing runs search as its own process of a split deployment
// (the real binary with --target search against the first process's NATS), kills it with
// kill -9 while it works through a backlog, restarts it on the same data dir, and checks that
// every message is in the index exactly once and found through the API.
func TestKilledSearchLosesAndDoublesNothing(t *testing.T) {
	t.Setenv("NATTER_JWT_SECRET", strings.Repeat("s", 48))
	// A short ack wait, so that what the killed process held comes back within seconds. Every
	// process applies the definitions, so every process gets the flag.
	ackWait := []string{"--ack-wait", "2s"}
	main := StartNatter(t, t.TempDir(), append([]string{"--target", "gateway,api,persister,fanout,presence,push,store"}, ackWait...)...)
	alice, bob := signUp(t, main.Addrs.API, "alice"), signUp(t, main.Addrs.API, "bob")
	var direct struct {
		Conversation struct{ ID string } `json:"conversation"`
	}
	doJSON(t, "POST", main.Addrs.API+"/v1/conversations/direct", alice.Token, map[string]string{"user_id": bob.ID}, http.StatusCreated, &direct)
	doJSON(t, "POST", main.Addrs.API+"/v1/conversations/direct", bob.Token, map[string]string{"user_id": alice.ID}, 0, nil) // accepts
	conv := direct.Conversation.ID

	// A backlog on CHAT, published as the gateway publishes sends.
	nc, js := natsxtest.Dial(t, main.Addrs.NATS, "e2e-test", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 1000
	var last uint64
	for i := range n {
		data, err := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: conv, MessageID: fmt.Sprintf("%026d", i),
			SenderID: alice.ID, SenderDevice: "phone", ClientMsgID: fmt.Sprint(i),
			Text: fmt.Sprintf("tok%d common 안녕하세요", i), SentAt: time.Now().UnixMilli()}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		ack, err := js.Publish(ctx, streams.ChatSubject(conv, streams.KindMsg), data, jetstream.WithMsgID(alice.ID+":"+fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}

	dir := t.TempDir()
	// Batches of 100, so that the process is killed with part of the backlog committed.
	searchArgs := append([]string{"--target", "search", "--nats-url", main.Addrs.NATS, "--search-batch", "100"}, ackWait...)
	proc := StartNatter(t, dir, searchArgs...)
	status := wire.NewClient(nc, 5*time.Second)
	deadline := time.Now().Add(time.Minute)
	for {
		// Something acknowledged, so committed to disk; the rest of the backlog still in flight.
		if st, err := status.Status(ctx); err == nil && st.IndexedSeq > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing indexed\n%s", proc.Output())
		}
		time.Sleep(time.Millisecond)
	}
	proc.Kill()
	idx, err := search.OpenBleve(filepath.Join(dir, "search"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := idx.Count()
	_ = idx.Close()
	if err != nil || docs == 0 || docs >= n {
		t.Fatalf("killed with %d of %d messages indexed (%v): not mid-stream", docs, n, err)
	}
	t.Logf("killed with %d of %d messages indexed", docs, n)

	StartNatter(t, dir, searchArgs...)
	deadline = time.Now().Add(time.Minute)
	var st wire.Status
	for {
		if st, err = status.Status(ctx); err == nil && st.IndexedSeq >= last && st.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("index not caught up: %+v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Documents != n {
		t.Fatalf("%d documents after the restart, want %d", st.Documents, n)
	}
	// Through the API: every message once, newest first among equal scores.
	seen := map[uint64]bool{}
	cursor := ""
	for {
		var res struct {
			Hits       []wire.Hit `json:"hits"`
			NextCursor string     `json:"next_cursor"`
		}
		doJSON(t, "GET", main.Addrs.API+"/v1/search?limit=100&q="+url.QueryEscape("common 안녕")+cursor, bob.Token, nil, http.StatusOK, &res)
		for _, h := range res.Hits {
			if seen[h.Seq] {
				t.Fatalf("seq %d found twice", h.Seq)
			}
			seen[h.Seq] = true
		}
		if res.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + url.QueryEscape(res.NextCursor)
	}
	if len(seen) != n {
		t.Fatalf("%d messages found, want %d", len(seen), n)
	}
	var one struct{ Hits []wire.Hit }
	doJSON(t, "GET", main.Addrs.API+"/v1/search?q=tok123", alice.Token, nil, http.StatusOK, &one)
	if len(one.Hits) != 1 || one.Hits[0].MessageID != fmt.Sprintf("%026d", 123) || one.Hits[0].Snippet != "<mark>tok123</mark> common 안녕하세요" {
		t.Fatalf("tok123: %+v", one.Hits)
	}
}

// TestTheAllInOneIndexesSearchInANicedProcess runs natter run with its default targets: search
// is indexed by a child process at nice 19 (--search-process). Messages are found through the
// API; the child's metrics are on the parent's /metrics; a child killed with kill -9 is started
// again and indexes on; and a parent killed with kill -9 takes the child with it.
func TestTheAllInOneIndexesSearchInANicedProcess(t *testing.T) {
	t.Setenv("NATTER_JWT_SECRET", strings.Repeat("s", 48))
	main := StartNatter(t, t.TempDir())
	alice, bob := signUp(t, main.Addrs.API, "alice"), signUp(t, main.Addrs.API, "bob")
	conv := openDirect(t, main.Addrs.API, alice, bob)
	_, js := natsxtest.Dial(t, main.Addrs.NATS, "e2e-test", nil)
	send := func(word string) {
		t.Helper()
		data, err := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: conv, MessageID: "m-" + word, SenderID: alice.ID,
			SenderDevice: "phone", ClientMsgID: word, Text: word + " from alice", SentAt: time.Now().UnixMilli()}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(context.Background(), streams.ChatSubject(conv, streams.KindMsg), data); err != nil {
			t.Fatal(err)
		}
	}
	found := func(word string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var res struct{ Hits []wire.Hit }
			status, raw := apptest.Request(t, "GET", main.Addrs.API+"/v1/search?q="+word, alice.Token, nil)
			if status == http.StatusOK && json.Unmarshal(raw, &res) == nil && len(res.Hits) == 1 && res.Hits[0].MessageID == "m-"+word {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%q not found: %d %s", word, status, raw)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	parent := main.cmd.Process.Pid
	child := onlyChild(t, parent)
	if nice := procStat(t, child)[16]; nice != "19" {
		t.Fatalf("search process %d runs at nice %s, want 19", child, nice)
	}
	if nice := procStat(t, parent)[16]; nice != "0" {
		t.Fatalf("natter's own main thread runs at nice %s, want 0", nice)
	}
	send("walrus")
	found("walrus")
	resp, err := http.Get(main.Addrs.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	metrics := string(raw)
	for _, want := range []string{"natter_search_process_up 1\n", "natter_search_indexed_total 1\n", "natter_spare_proc "} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("the parent's /metrics lacks %q:\n%s", want, metrics)
		}
	}

	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for again := 0; again == 0 || again == child; again = childOf(t, parent) {
		if time.Now().After(deadline) {
			t.Fatalf("no search process after the first was killed\n%s", main.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	send("narwhal")
	found("narwhal")

	last := onlyChild(t, parent)
	main.Kill()
	deadline = time.Now().Add(10 * time.Second)
	for procAlive(last) {
		if time.Now().After(deadline) {
			t.Fatalf("search process %d outlived its killed parent", last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// childOf is the one child process of parent, 0 if it has none; more than one fails the test.
func childOf(t *testing.T, parent int) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readProcStat(pid)
		if !ok || st[1] != strconv.Itoa(parent) || st[0] == "Z" {
			continue
		}
		if found != 0 {
			t.Fatalf("process %d has more than one child: %d and %d", parent, found, pid)
		}
		found = pid
	}
	return found
}

// onlyChild is childOf, and fails the test when there is none.
func onlyChild(t *testing.T, parent int) int {
	t.Helper()
	c := childOf(t, parent)
	if c == 0 {
		t.Fatalf("process %d has no child", parent)
	}
	return c
}

// readProcStat is /proc/<pid>/stat's fields after the command name: [0] is the state, [1] the
// parent's pid, [16] the niceness.
func readProcStat(pid int) ([]string, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return nil, false
	}
	f := strings.Fields(string(raw[i+1:]))
	return f, len(f) > 16
}

func procStat(t *testing.T, pid int) []string {
	t.Helper()
	f, ok := readProcStat(pid)
	if !ok {
		t.Fatalf("no /proc/%d/stat", pid)
	}
	return f
}

// procAlive reports whether pid runs (a zombie does not).
func procAlive(pid int) bool {
	f, ok := readProcStat(pid)
	return ok && f[0] != "Z"
}
