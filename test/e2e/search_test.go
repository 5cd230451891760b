package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/procstat"
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
	if nice := niceOf(t, child); nice != 19 {
		t.Fatalf("search process %d runs at nice %d, want 19", child, nice)
	}
	if nice := niceOf(t, parent); nice != 0 {
		t.Fatalf("natter's own main thread runs at nice %d, want 0", nice)
	}
	send("walrus")
	found("walrus")
	// The counter moves just after the batch it counts becomes searchable: read it until it shows.
	awaitMetrics(t, main.Addrs.Metrics, 10*time.Second, "natter_search_process_up 1\n", "natter_search_indexed_total 1\n", "natter_spare_proc ")

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

// TestStoppingTheAllInOneStopsItsSearchProcessFirst: Ctrl-C stops the search process cleanly
// while the NATS server it reads from still runs, then natter itself; nothing is left running.
// (Were it left to the parent-death signal, it would be killed and log no clean stop; stopped
// after NATS, its own stop would fail on the closed connection.)
func TestStoppingTheAllInOneStopsItsSearchProcessFirst(t *testing.T) {
	t.Setenv("NATTER_JWT_SECRET", strings.Repeat("s", 48))
	main := StartNatter(t, t.TempDir())
	child := onlyChild(t, main.cmd.Process.Pid)
	// On busy CPUs natter may start before its niced search process is ready; stopped before
	// then, the child ends its start instead of stopping cleanly.
	awaitMetrics(t, main.Addrs.Metrics, 60*time.Second, "natter_search_process_up 1\n")
	main.Interrupt()
	if procAlive(child) {
		t.Fatalf("search process %d still runs after natter stopped", child)
	}
	if !main.hasLine(`"msg":"stopped cleanly"`, `"process":"search"`) {
		t.Fatalf("the search process logged no clean stop:\n%s", main.Output())
	}
}

// TestAStalledSearchProcessDelaysNatterOnlySoLong: a search process that cannot run (stopped
// with SIGSTOP as soon as it appears, as a niced process on full CPUs nearly is) delays natter's
// start and its stop each by a bounded wait: natter starts without it, kills it on Ctrl-C, and
// still stops cleanly. (Before, the start failed once the start timeout passed, and the stop
// spent its whole time on the child and then failed.)
func TestAStalledSearchProcessDelaysNatterOnlySoLong(t *testing.T) {
	t.Setenv("NATTER_JWT_SECRET", strings.Repeat("s", 48))
	p, addrFile := launchNatter(t, t.TempDir())
	child := stopSearchOnceItRuns(t, p)
	p.awaitAddrs(addrFile)
	if out := p.Output(); !strings.Contains(out, "search process not ready yet") || !strings.Contains(out, ", nice 19, starting)") {
		t.Fatalf("natter started without saying that its search process is not ready:\n%s", out)
	}
	p.Interrupt() // a clean stop, exit status 0
	if procAlive(child) {
		t.Fatalf("the stalled search process %d still runs after natter stopped", child)
	}
	if !strings.Contains(p.Output(), "search process killed") {
		t.Fatalf("natter did not say it killed its search process:\n%s", p.Output())
	}
}

// TestCtrlCWhileNatterWaitsForSearchStopsIt: a Ctrl-C while natter waits for its search process
// to be ready ends the start there: natter neither says it starts without search nor prints
// where to connect, and it stops cleanly, its search process too. (Before, the wait's end read
// as "not ready yet", and natter printed its banner on its way to stop.)
func TestCtrlCWhileNatterWaitsForSearchStopsIt(t *testing.T) {
	t.Setenv("NATTER_JWT_SECRET", strings.Repeat("s", 48))
	p, addrFile := launchNatter(t, t.TempDir())
	// Stopped, the child cannot become ready: natter is in its wait (or about to be) until the
	// Ctrl-C. Continued after it, the child takes natter's SIGTERM at once.
	child := stopSearchOnceItRuns(t, p)
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(child, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("natter exited with %v after Ctrl-C during its wait for search\n%s", err, p.Output())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("natter did not end within 60s of Ctrl-C during its wait for search\n%s", p.Output())
	}
	out := p.Output()
	for _, said := range []string{"search process not ready yet", "is running (", "Ctrl-C stops it cleanly"} {
		if strings.Contains(out, said) {
			t.Errorf("natter said %q though it was stopping:\n%s", said, out)
		}
	}
	if !strings.Contains(out, `"msg":"stopped cleanly"`) {
		t.Errorf("natter did not stop cleanly:\n%s", out)
	}
	if _, err := os.Stat(addrFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("natter wrote its addresses though it was stopping (stat: %v)", err)
	}
	if procAlive(child) {
		t.Errorf("the search process %d still runs after natter stopped", child)
	}
}

// stopSearchOnceItRuns waits for p's search process to run its own program and stops it with
// SIGSTOP, as a niced process on full CPUs nearly is; it returns the child's pid. (Between the
// fork and the exec the child is a copy of natter, whose start waits for the exec.)
func stopSearchOnceItRuns(t *testing.T, p *Process) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	child := 0
	for !searchRuns(child) {
		if time.Now().After(deadline) {
			t.Fatalf("no search process within 60s\n%s", p.Output())
		}
		time.Sleep(time.Millisecond)
		child = childOf(t, p.cmd.Process.Pid)
	}
	if err := syscall.Kill(child, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	return child
}

// searchRuns reports whether pid runs natter's search process (its exec done).
func searchRuns(pid int) bool {
	if pid == 0 {
		return false
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && slices.Contains(strings.Split(string(raw), "\x00"), "--search-process=false")
}

// childOf is the one running descendant of parent, 0 if it has none; more than one fails the test.
func childOf(t *testing.T, parent int) int {
	t.Helper()
	tree, err := procstat.Tree(parent)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, pid := range tree[1:] {
		if st, err := procstat.Read(pid); err != nil || !st.Alive() {
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

// niceOf is a running process's niceness.
func niceOf(t *testing.T, pid int) int {
	t.Helper()
	st, err := procstat.Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.Nice
}

// procAlive reports whether pid runs (a zombie does not).
func procAlive(pid int) bool {
	st, err := procstat.Read(pid)
	return err == nil && st.Alive()
}

// awaitMetrics waits, at most timeout (0: one look), until the /metrics page at url holds every
// one of wants.
func awaitMetrics(t *testing.T, url string, timeout time.Duration, wants ...string) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		_, raw := apptest.Request(t, http.MethodGet, url, "", nil)
		missing := slices.IndexFunc(wants, func(w string) bool { return !strings.Contains(string(raw), w) })
		if missing < 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s lacks %q:\n%s", url, wants[missing], raw)
		}
	}
}
