package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/remote"
	"github.com/natter-chat/natter/sdk/go/client"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

// deployment is natter split into separate processes of the real binary on loopback: three
// NATS nodes forming one JetStream cluster (R3), one process serving the Pebble store and the
// API (with presence and push), and two each of gateway, fanout and persister. Any process can
// be killed with kill -9 and restarted with the same flags and data directory.
type deployment struct {
	t       *testing.T
	natsURL string
	args    map[string][]string
	dirs    map[string]string
	mu      sync.Mutex
	procs   map[string]*Process
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	t.Setenv("NATTER_JWT_SECRET", strings.Repeat("f", 48))
	d := &deployment{t: t, args: map[string][]string{}, dirs: map[string]string{}, procs: map[string]*Process{}}
	var clientURLs, routes []string
	ports := natsxtest.FreePorts(t, 6) // a client and a cluster port per node, fixed across restarts
	var nodes [][2]int
	for i := range 3 {
		c, r := ports[2*i], ports[2*i+1]
		nodes = append(nodes, [2]int{c, r})
		clientURLs = append(clientURLs, fmt.Sprintf("nats://127.0.0.1:%d", c))
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", r))
	}
	d.natsURL = strings.Join(clientURLs, ",")
	for i, n := range nodes {
		d.define(fmt.Sprintf("n%d", i+1), "--target", "nats", "--nats-name", fmt.Sprintf("n%d", i+1),
			"--nats-port", strconv.Itoa(n[0]), "--nats-cluster", "natter", "--nats-cluster-port", strconv.Itoa(n[1]),
			"--nats-routes", strings.Join(routes, ","))
	}
	shared := []string{"--nats-url", d.natsURL, "--replicas", "3", "--fanout-partitions", "4", "--gateway-ttl", "3s"}
	d.define("core", append([]string{"--target", "store,api,presence,push", "--store", "pebble"}, shared...)...)
	for _, c := range []string{"gateway", "fanout", "persister"} {
		for i := 1; i <= 2; i++ {
			d.define(fmt.Sprintf("%s%d", c, i), append([]string{"--target", c, "--store", "remote"}, shared...)...)
		}
	}
	// The nodes first: the others wait for a JetStream meta leader while they start.
	var wg sync.WaitGroup
	for _, name := range []string{"n1", "n2", "n3"} {
		wg.Add(1)
		go func() { defer wg.Done(); d.start(name) }()
	}
	wg.Wait()
	d.start("core")
	for _, name := range []string{"gateway1", "gateway2", "fanout1", "fanout2", "persister1", "persister2"} {
		wg.Add(1)
		go func() { defer wg.Done(); d.start(name) }()
	}
	wg.Wait()
	return d
}

func (d *deployment) define(name string, args ...string) {
	d.args[name] = args
	d.dirs[name] = filepath.Join(d.t.TempDir(), name)
}

// start runs (or restarts) a process with its flags and data directory.
func (d *deployment) start(name string) {
	p := StartNatter(d.t, d.dirs[name], d.args[name]...)
	d.mu.Lock()
	d.procs[name] = p
	d.mu.Unlock()
}

func (d *deployment) proc(name string) *Process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.procs[name]
}

// kill sends SIGKILL, as kill -9 does.
func (d *deployment) kill(name string) { d.proc(name).Kill() }

func (d *deployment) api() string { return d.proc("core").Addrs.API }

// outcome is what a sender knows about one send.
type outcome struct {
	conv, clientID string
	seq            uint64 // 0: unknown (no ack before the sender gave up)
}

// sends collects what several senders know about their sends.
type sends struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	outcomes []outcome
}

// keepSending sends from cl every interval until stop is closed: its n-th send goes to conv(n)
// with the client id "<handle>-<n>". A send that gets no ack within 20 s of retries is recorded
// with seq 0.
func (s *sends) keepSending(ctx context.Context, cl *client.Client, handle string, every time.Duration, stop <-chan struct{}, conv func(n int) string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
			o := outcome{conv: conv(n), clientID: fmt.Sprintf("%s-%d", handle, n)}
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			if ack, err := cl.SendWithID(sctx, o.conv, o.clientID, fmt.Sprintf("message %d from %s", n, handle)); err == nil {
				o.seq = ack.Seq
			}
			cancel()
			s.mu.Lock()
			s.outcomes = append(s.outcomes, o)
			s.mu.Unlock()
		}
	}()
}

// wait waits until every sender has stopped and returns their outcomes.
func (s *sends) wait() []outcome {
	s.wg.Wait()
	return s.outcomes
}

// TestFaultsLoseNoAcknowledgedMessage: clients send continuously while a gateway, a fanout, a
// persister and a NATS node are each killed with kill -9 and restarted. At the end no
// acknowledged message is missing, every device has every message of its conversations once and
// in order, and the store has each once. NATTER_FAULT_CYCLES (make test-fault) runs more cycles.
func TestFaultsLoseNoAcknowledgedMessage(t *testing.T) {
	cycles := 1
	if v, err := strconv.Atoi(os.Getenv("NATTER_FAULT_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	d := newDeployment(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cycles)*3*time.Minute+2*time.Minute)
	defer cancel()

	// Six users on two devices each; a direct conversation between neighbours and one group.
	const users = 6
	var accts []account
	for i := range users {
		accts = append(accts, signUp(t, d.api(), fmt.Sprintf("user%d", i)))
	}
	memberOf := map[string][]string{} // user id -> conversations
	var convs []string
	for i := range users {
		a, b := accts[i], accts[(i+1)%users]
		conv := openDirect(t, d.api(), a, b)
		convs = append(convs, conv)
		memberOf[a.ID] = append(memberOf[a.ID], conv)
		memberOf[b.ID] = append(memberOf[b.ID], conv)
	}
	var ids []string
	for _, a := range accts[1:] {
		ids = append(ids, a.ID)
	}
	var group struct {
		Conversation struct{ ID string } `json:"conversation"`
	}
	doJSON(t, "POST", d.api()+"/v1/groups", accts[0].Token, map[string]any{"name": "everyone", "member_ids": ids}, http.StatusCreated, &group)
	for _, a := range accts[1:] {
		doJSON(t, "POST", d.api()+"/v1/conversations/"+group.Conversation.ID+"/accept", a.Token, nil, http.StatusOK, nil)
	}
	convs = append(convs, group.Conversation.ID)
	for _, a := range accts {
		memberOf[a.ID] = append(memberOf[a.ID], group.Conversation.ID)
	}

	type device struct {
		name   string
		user   account
		cl     *client.Client
		mu     sync.Mutex
		byConv map[string][]uint64 // message seqs received, in arrival order
		trail  []string            // every arrival as "seq@conv#connection", for diagnosis
	}
	var devices []*device
	var received atomic.Int64
	var collectors sync.WaitGroup
	for _, a := range accts {
		for _, dev := range []string{"phone", "laptop"} {
			zero := uint64(0)
			// A session per device, renewing its access tokens: a long run (make test-fault)
			// outlives them, and every reconnect after a kill needs a valid one.
			sess, err := client.Login(ctx, d.api(), a.Handle, password(a.Handle))
			if err != nil {
				t.Fatal(err)
			}
			cl, err := client.Dial(client.Config{Discover: apptest.Discover(d.api()), TokenSource: sess.Token, DeviceID: dev, Cursor: &zero,
				MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, AttemptTimeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			dv := &device{name: a.Handle + "/" + dev, user: a, cl: cl, byConv: map[string][]uint64{}}
			devices = append(devices, dv)
			collectors.Add(1)
			go func() {
				defer collectors.Done()
				for ev := range cl.Events() {
					if ev.Type == protocol.TypeMessage {
						dv.mu.Lock()
						dv.byConv[ev.ConversationID] = append(dv.byConv[ev.ConversationID], ev.Seq)
						dv.trail = append(dv.trail, fmt.Sprintf("%d@%.4s#%d", ev.Seq, ev.ConversationID, cl.Connects()))
						dv.mu.Unlock()
						received.Add(1)
					}
				}
			}()
		}
	}
	defer func() {
		for _, dv := range devices {
			_ = dv.cl.Close()
		}
		collectors.Wait()
	}()
	for _, dv := range devices {
		select {
		case <-dv.cl.Ready():
		case <-ctx.Done():
			t.Fatalf("%s never connected", dv.name)
		}
	}

	// Traffic: every user sends from their phone, round robin over their conversations, until
	// the faults are over. A send that gets no ack within 20 s of retries is "unknown".
	var sent sends
	stop := make(chan struct{})
	for u, a := range accts {
		sent.keepSending(ctx, devices[2*u].cl, a.Handle, 25*time.Millisecond, stop, func(n int) string {
			return memberOf[a.ID][n%len(memberOf[a.ID])]
		})
	}

	settle := func() { time.Sleep(3 * time.Second) }
	settle()
	for cycle := range cycles {
		i := 1 + cycle%2 // alternate the victims between the two instances
		for _, victim := range []string{fmt.Sprintf("gateway%d", i), fmt.Sprintf("fanout%d", i), fmt.Sprintf("persister%d", i), fmt.Sprintf("n%d", 1+cycle%3)} {
			killed := time.Now()
			d.kill(victim)
			time.Sleep(time.Second)
			d.start(victim)
			t.Logf("cycle %d: killed %s with kill -9, restarted it %s later", cycle+1, victim, time.Since(killed).Round(time.Millisecond))
			settle()
		}
	}
	close(stop)
	outcomes := sent.wait()

	// The truth: every message event in CHAT, read through the cluster.
	nc, js := natsxtest.Dial(t, d.natsURL, "e2e-test", nil)
	truth := chatTruth(ctx, t, js)

	var acked, unknown int
	for _, o := range outcomes {
		if o.seq == 0 {
			unknown++
			continue
		}
		acked++
		if got, ok := truth.bySeq[o.seq]; !ok || got.clientID != o.clientID || got.conv != o.conv {
			t.Errorf("acknowledged %s at seq %d in %s: the stream has %+v (present %v)", o.clientID, o.seq, o.conv, got, ok)
		}
	}
	for id, n := range truth.copies {
		if n != 1 {
			t.Errorf("client message %s is in the stream %d times", id, n)
		}
	}

	// Every device: every message of its conversations, once, in order.
	deadline := time.Now().Add(90 * time.Second)
	for _, dv := range devices {
		for _, conv := range memberOf[dv.user.ID] {
			want := truth.byConv[conv]
			for {
				dv.mu.Lock()
				got := slices.Clone(dv.byConv[conv])
				dv.mu.Unlock()
				if slices.Equal(got, want) {
					break
				}
				if time.Now().After(deadline) || len(got) > len(want) {
					dv.mu.Lock()
					t.Logf("%s arrivals (seq@conversation#connection): %v", dv.name, dv.trail)
					dv.mu.Unlock()
					t.Fatalf("%s in %s: %d messages, want %d once in order:\n got %v\nwant %v", dv.name, conv, len(got), len(want), got, want)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}

	// The store: each message once, at its seq.
	st, err := remote.Dial(nc, remote.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, conv := range convs {
		want := truth.byConv[conv]
		for {
			got, err := storedSeqs(ctx, st, conv)
			if err == nil && slices.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("store has %v for %s (err %v), want %v", got, conv, err, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("%d sends: %d acknowledged, %d unknown outcome; %d messages in the stream; %d deliveries to %d devices; 0 lost, 0 duplicated",
		len(outcomes), acked, unknown, len(truth.bySeq), received.Load(), len(devices))
}

type truthMsg struct{ conv, clientID string }

type truth struct {
	bySeq  map[uint64]truthMsg
	byConv map[string][]uint64
	copies map[string]int // sender/client id -> count
}

// chatTruth reads every message event of the CHAT stream through its leader.
func chatTruth(ctx context.Context, t *testing.T, js jetstream.JetStream) truth {
	t.Helper()
	stream, err := js.Stream(ctx, streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := untilAvailable(ctx, func() (*jetstream.StreamInfo, error) { return stream.Info(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	tr := truth{bySeq: map[uint64]truthMsg{}, byConv: map[string][]uint64{}, copies: map[string]int{}}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := untilAvailable(ctx, func() (*jetstream.RawStreamMsg, error) { return stream.GetMsg(ctx, seq) })
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		conv, kind, ok := streams.ParseChatSubject(raw.Subject)
		if !ok || kind != streams.KindMsg {
			continue
		}
		ev, err := streams.DecodeChatEvent(raw.Data)
		if err != nil {
			t.Fatal(err)
		}
		tr.bySeq[seq] = truthMsg{conv: conv, clientID: ev.ClientMsgID}
		tr.byConv[conv] = append(tr.byConv[conv], seq)
		tr.copies[ev.SenderID+"/"+ev.ClientMsgID]++
	}
	return tr
}

// untilAvailable retries do while the cluster answers that JetStream is temporarily unavailable
// (a restarted node rejoining, a leader being elected), for up to 30 s; other outcomes return.
func untilAvailable[T any](ctx context.Context, do func() (T, error)) (T, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := do()
		var apiErr *jetstream.APIError
		transient := errors.As(err, &apiErr) && apiErr.Code == 503 || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
		if !transient || time.Now().After(deadline) || ctx.Err() != nil {
			return v, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// storedSeqs is the seqs of a conversation's stored text messages (not membership events),
// oldest first.
func storedSeqs(ctx context.Context, st store.Store, conv string) ([]uint64, error) {
	ms, err := storedMessages(ctx, st, conv)
	var seqs []uint64
	for _, m := range ms {
		seqs = append(seqs, m.Seq)
	}
	return seqs, err
}

// storedMessages pages through a conversation's stored text messages, oldest first.
func storedMessages(ctx context.Context, st store.Store, conv string) ([]store.Message, error) {
	var out []store.Message
	var after uint64
	for {
		page, err := st.Messages(ctx, conv, store.Page{After: after, Oldest: true, Limit: store.MaxPageLimit})
		if err != nil {
			return out, err
		}
		if len(page) == 0 {
			return out, nil
		}
		for _, m := range slices.Backward(page) { // pages come newest first
			if m.Kind == streams.KindMsg {
				out = append(out, m)
			}
		}
		after = page[0].Seq
	}
}
