package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store/pebble"
	"github.com/natter-chat/natter/sdk/go/client"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

// TestKilledAllInOneStoresEveryAcknowledgedMessage: four users send in two direct conversations
// while natter, all in one process, is killed with kill -9 three times and restarted on the same
// data and ports. Its persister is the embedded store's only one and acknowledges a chunk at a
// time, so each restart must write what the killed run was delivered and never acknowledged.
// At the end, once the persister has caught up, natter stops, and the store, opened directly,
// has every acknowledged message once, at its seq.
func TestKilledAllInOneStoresEveryAcknowledgedMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dataDir := t.TempDir()
	ports := natsxtest.FreePorts(t, 3)
	fixed := []string{"--api-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--ws-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--nats-port", strconv.Itoa(ports[2])} // the clients reconnect to the same addresses
	p := StartNatter(t, dataDir, fixed...)
	api := p.Addrs.API

	const users = 4
	var accts []account
	for i := range users {
		accts = append(accts, signUp(t, api, fmt.Sprintf("sender%d", i)))
	}
	convOf := map[string]string{} // user id -> the direct conversation with its neighbour
	for i := 0; i < users; i += 2 {
		a, b := accts[i], accts[i+1]
		convOf[a.ID] = openDirect(t, api, a, b)
		convOf[b.ID] = convOf[a.ID]
	}

	var sent sends
	stop := make(chan struct{})
	for _, a := range accts {
		sess, err := client.Login(ctx, api, a.Handle, password(a.Handle))
		if err != nil {
			t.Fatal(err)
		}
		cl, err := client.Dial(client.Config{Discover: apptest.Discover(api), TokenSource: sess.Token, DeviceID: "phone",
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, AttemptTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		go func() { // the events are not what this test checks; keep them flowing
			for range cl.Events() {
			}
		}()
		sent.keepSending(ctx, cl, a.Handle, 10*time.Millisecond, stop, func(int) string { return convOf[a.ID] })
	}

	for cycle := range 3 {
		time.Sleep(time.Second)
		p.Kill()
		p = StartNatter(t, dataDir, fixed...)
		t.Logf("cycle %d: killed natter with kill -9 and restarted it", cycle+1)
	}
	time.Sleep(time.Second)
	close(stop)
	outcomes := sent.wait()

	waitPersisted(ctx, t, p.Addrs.NATS)
	p.Interrupt()
	st, err := pebble.Open(filepath.Join(dataDir, "store"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := map[string]map[uint64]string{} // conversation -> seq -> client id
	copies := map[string]int{}               // client id -> stored messages
	for _, conv := range convOf {
		if stored[conv] != nil {
			continue
		}
		stored[conv] = map[uint64]string{}
		ms, err := storedMessages(ctx, st, conv)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			stored[conv][m.Seq] = m.ClientMsgID
			copies[m.ClientMsgID]++
		}
	}
	acked := 0
	for _, o := range outcomes {
		if o.seq == 0 {
			continue
		}
		acked++
		if got, ok := stored[o.conv][o.seq]; !ok || got != o.clientID {
			t.Errorf("acknowledged %s at seq %d in %s: the store has %q there (present %v)", o.clientID, o.seq, o.conv, got, ok)
		}
	}
	for id, n := range copies {
		if n != 1 {
			t.Errorf("client message %s stored %d times", id, n)
		}
	}
	if acked < 10*users {
		t.Fatalf("only %d of %d sends acknowledged", acked, len(outcomes))
	}
	t.Logf("%d sends, %d acknowledged; each of them stored once across 3 kills", len(outcomes), acked)
}

// waitPersisted waits until the persister has acknowledged every CHAT event.
func waitPersisted(ctx context.Context, t *testing.T, natsURL string) {
	t.Helper()
	_, js := natsxtest.Dial(t, natsURL, "e2e-test", nil)
	deadline := time.Now().Add(60 * time.Second)
	for {
		cons, err := js.Consumer(ctx, streams.ChatStream, streams.PersisterConsumer)
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("persister not caught up after 60s: %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
