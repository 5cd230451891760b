// Package invariant checks natter's invariants (docs/architecture.md, "Invariants and the tests
// that check them") on a whole natter under churn: many users and devices, overlapping groups
// and direct conversations, random sends and reconnects, a gateway restart, a persister stop
// and start, and membership changes — then compares every device, the store and every
// acknowledged send with the ground truth read back from the CHAT stream.
package invariant

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/sdk/go/client"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, apptest.IgnoreLibraryGoroutines()...) }

type scale struct {
	users, directs, groups, maxGroup, sends, reconnects int
	traffic                                             time.Duration // bound on the traffic phase
}

// The default runs in make test (well under two minutes with -race); NATTER_INVARIANT=large is
// make test-invariant.
func chooseScale() scale {
	if os.Getenv("NATTER_INVARIANT") == "large" {
		return scale{users: 200, directs: 400, groups: 40, maxGroup: 60, sends: 40, reconnects: 300, traffic: 12 * time.Minute}
	}
	return scale{users: 50, directs: 80, groups: 12, maxGroup: 25, sends: 20, reconnects: 120, traffic: 3 * time.Minute}
}

type device struct {
	id   string
	user apptest.User
	mu   sync.Mutex
	cl   *client.Client
	got  []client.Event
	done chan struct{} // closed when the current client's events are drained
}

func (d *device) connect(t *testing.T, apiURL string, cursor uint64) {
	cl, err := client.Dial(client.Config{Discover: apptest.Discover(apiURL), Token: d.user.Token, DeviceID: d.id,
		Cursor: &cursor, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, AttemptTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	d.mu.Lock()
	d.cl, d.done = cl, done
	d.mu.Unlock()
	go func() {
		defer close(done)
		for ev := range cl.Events() {
			d.mu.Lock()
			d.got = append(d.got, ev)
			d.mu.Unlock()
		}
	}()
}

// reconnect closes the device's client and opens a new one from the cursor it reached.
func (d *device) reconnect(t *testing.T, apiURL string) {
	d.mu.Lock()
	cl, done := d.cl, d.done
	d.mu.Unlock()
	_ = cl.Close()
	<-done
	d.connect(t, apiURL, cl.Cursor())
}

func (d *device) client() *client.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cl
}

type sentAck struct {
	sender, cmid string
	ack          client.Ack
}

func TestSyncNeverSkipsUnderChurn(t *testing.T) {
	sc := chooseScale()
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	c := newCluster(t)
	api := c.start(app.TargetAPI)
	persister := c.start(app.TargetPersister)
	c.start(app.TargetFanout)
	c.start(app.TargetPresence)
	gw := c.start(app.TargetGateway)
	apiURL := "http://" + api.run.API.Addr()
	sys := &apptest.System{T: t, APIURL: apiURL}

	// Users and devices; every device starts at the current head.
	users := make([]apptest.User, sc.users)
	var devices []*device
	byUser := map[string][]*device{}
	for i := range users {
		users[i] = sys.SignUp(fmt.Sprintf("user%03d", i))
		for j := 0; j < 1+rng.IntN(3); j++ {
			d := &device{id: fmt.Sprintf("u%dd%d", i, j), user: users[i]}
			devices = append(devices, d)
			byUser[users[i].ID] = append(byUser[users[i].ID], d)
		}
	}
	head0 := streamHead(t, c)
	for _, d := range devices {
		d.connect(t, apiURL, head0)
	}
	// Conversations: direct pairs and overlapping groups.
	member := map[string][]string{} // conversation -> users who may send (the test's model)
	var convs []string
	for len(convs) < sc.directs {
		a, b := users[rng.IntN(len(users))], users[rng.IntN(len(users))]
		if a.ID == b.ID {
			continue
		}
		id := sys.Direct(a, b)
		if _, dup := member[id]; !dup {
			convs = append(convs, id)
			member[id] = []string{a.ID, b.ID}
		}
	}
	var groups []string
	for g := 0; g < sc.groups; g++ {
		perm := rng.Perm(len(users))[:3+rng.IntN(sc.maxGroup-2)]
		owner, ids := users[perm[0]], []string{}
		for _, p := range perm[1:] {
			ids = append(ids, users[p].ID)
		}
		var out struct {
			Conversation struct{ ID string } `json:"conversation"`
		}
		sys.Do("POST", "/v1/groups", owner.Token, map[string]any{"name": fmt.Sprintf("group %d", g), "member_ids": ids}, http.StatusCreated, &out)
		for _, id := range ids {
			sys.Do("POST", "/v1/conversations/"+out.Conversation.ID+"/accept", userByID(users, id).Token, nil, http.StatusOK, nil)
		}
		convs = append(convs, out.Conversation.ID)
		groups = append(groups, out.Conversation.ID)
		member[out.Conversation.ID] = append([]string{owner.ID}, ids...)
	}
	convsOf := map[string][]string{}
	for conv, us := range member {
		for _, u := range us {
			convsOf[u] = append(convsOf[u], conv)
		}
	}

	// Traffic: every device sends to its user's conversations; some sends are retried with the
	// same client message id on purpose.
	var (
		acksMu    sync.Mutex
		acks      []sentAck
		rejected  atomic.Int64
		revisions atomic.Int64 // edits, deletes and hides acknowledged
		refused   atomic.Int64 // edits and deletes refused (the message deleted meanwhile, or the sender removed)
		sendersW  sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), sc.traffic)
	defer cancel()
	for _, d := range devices {
		mine := convsOf[d.user.ID]
		if len(mine) == 0 {
			continue
		}
		sendersW.Add(1)
		go func(d *device, seed uint64) {
			defer sendersW.Done()
			r := rand.New(rand.NewPCG(seed, 7))
			var mineSent []client.Ack // this device's acknowledged messages, to edit and delete
			for k := 0; k < sc.sends; k++ {
				conv, cmid := mine[r.IntN(len(mine))], fmt.Sprintf("%s-%d", d.id, k)
				for tries := 1 + r.IntN(2); tries > 0; tries-- { // sometimes twice: one message all the same
					ack, err := sendUntilAnswered(ctx, d, conv, cmid, fmt.Sprintf("%s says %d", d.id, k))
					var pe *client.Error
					if errors.As(err, &pe) && pe.Code == protocol.CodeNotMember {
						rejected.Add(1) // removed from the group meanwhile
						break
					}
					if err != nil {
						t.Errorf("send %s: %v", cmid, err)
						return
					}
					acksMu.Lock()
					acks = append(acks, sentAck{d.user.ID, cmid, ack})
					acksMu.Unlock()
					mineSent = append(mineSent, ack)
				}
				// Edits and deletes of this device's own messages, and hides of anything it got,
				// racing with the sends, syncs and reconnects of every other device.
				if len(mineSent) > 0 && r.IntN(3) == 0 {
					target := mineSent[r.IntN(len(mineSent))]
					rcmid := fmt.Sprintf("%s-r%d", d.id, k)
					var kind string
					switch r.IntN(4) {
					case 0:
						kind = "delete"
					case 1:
						kind = "hide"
						d.mu.Lock()
						for _, ev := range d.got { // some message it received, of anyone
							if ev.Type == protocol.TypeMessage && r.IntN(4) == 0 {
								target = client.Ack{ConversationID: ev.ConversationID, Seq: ev.Seq}
							}
						}
						d.mu.Unlock()
					default:
						kind = "edit"
					}
					for tries := 1 + r.IntN(2); tries > 0; tries-- { // a retry is one revision
						_, err := reviseUntilAnswered(ctx, d, kind, target.ConversationID, rcmid, target.Seq, fmt.Sprintf("%s edits %d", d.id, k))
						var pe *client.Error
						if errors.As(err, &pe) && (pe.Code == protocol.CodeNotMember || pe.Code == protocol.CodeMessageDeleted || pe.Code == protocol.CodeMessageNotFound) {
							refused.Add(1)
							break
						}
						if err != nil {
							t.Errorf("%s %s: %v", kind, rcmid, err)
							return
						}
						revisions.Add(1)
					}
				}
				if r.IntN(3) == 0 { // receipt traffic: read up to what this device has seen
					readCtx, cancelRead := context.WithTimeout(ctx, time.Second)
					_ = d.client().MarkRead(readCtx, mine[r.IntN(len(mine))], max(d.client().Cursor(), 1))
					cancelRead()
				}
				time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
			}
		}(d, rng.Uint64())
	}
	// Churn while the traffic runs.
	churn := make(chan struct{})
	go func() {
		defer close(churn)
		for i := 0; i < sc.reconnects; i++ {
			devices[rng.IntN(len(devices))].reconnect(t, apiURL)
			time.Sleep(5 * time.Millisecond)
			switch i {
			case sc.reconnects / 4: // the gateway restarts: every socket moves to a new one
				next := c.start(app.TargetGateway)
				gw.stop()
				gw = next
			case sc.reconnects / 3: // the persister stops; sync and history read the stream meanwhile
				persister.stop()
			case sc.reconnects / 2: // membership changes in the middle of the traffic
				changeMembership(t, sys, users, groups, member, rng)
			case 2 * sc.reconnects / 3:
				persister = c.start(app.TargetPersister)
			}
		}
	}()
	sendersW.Wait()
	<-churn
	if t.Failed() {
		return
	}

	// Ground truth: every timeline event from the stream, and the final memberships.
	head := streamHead(t, c)
	events := streamEvents(t, c, head0, head)
	expected := map[string][]uint64{} // user -> seqs they must see
	for _, ev := range events {
		ms, err := c.st.Members(context.Background(), ev.ConversationID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if timeline.Sees(m, ev) {
				expected[m.UserID] = append(expected[m.UserID], ev.Seq)
			}
		}
	}
	// Every device converges on exactly its expected events, each once, in seq order; besides
	// them, a device connected when its user was invited got that invitation live (it names
	// them), which is theirs to have but not part of what sync owes them.
	deadline := time.Now().Add(60 * time.Second)
	for _, d := range devices {
		for {
			d.mu.Lock()
			got := seqsOf(slices.DeleteFunc(slices.Clone(d.got), func(e client.Event) bool {
				change := client.InvitationChange(e, d.user.ID)
				return change == "invited" || change == "declined"
			}))
			d.mu.Unlock()
			if slices.Equal(got, expected[d.user.ID]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("device %s: %s%s", d.id, diff(got, expected[d.user.ID]), explain(c, events, d.user.ID, got, expected[d.user.ID]))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Every acknowledged send is in the stream, once per (sender, client message id), and a retry
	// got the first send's ack.
	byClientID := map[string]store.Message{}
	for _, ev := range events {
		if ev.Kind == streams.KindMember {
			continue
		}
		key := ev.SenderID + "/" + ev.ClientMsgID
		if prev, dup := byClientID[key]; dup {
			t.Fatalf("client message id %s is in the stream twice (seq %d and %d)", key, prev.Seq, ev.Seq)
		}
		byClientID[key] = ev
	}
	for _, a := range acks {
		ev, ok := byClientID[a.sender+"/"+a.cmid]
		if !ok || ev.Seq != a.ack.Seq || ev.ID != a.ack.MessageID {
			t.Fatalf("acked send %s (seq %d) is not in the stream as acked (found %+v)", a.cmid, a.ack.Seq, ev)
		}
	}
	// The store holds every event once.
	waitStored(t, c, head)
	stored := 0
	for _, conv := range convs {
		var want []uint64
		for _, ev := range events {
			if ev.ConversationID == conv {
				want = append(want, ev.Seq)
			}
		}
		got := storedSeqs(t, c.st, conv)
		if !slices.Equal(got, want) {
			t.Fatalf("store for %s: %s", conv, diff(got, want))
		}
		stored += len(got)
	}
	// Every device ends with the latest text or the tombstone the store has of every message it
	// received, as its user sees it (a message they deleted for themselves is deleted), in every
	// conversation it is still a member of.
	latest := map[uint64]store.Message{}
	for _, conv := range convs {
		for _, m := range storedMessages(t, c.st, conv) {
			latest[m.Seq] = m
		}
	}
	compared := 0
	for _, d := range devices {
		view := client.Messages{}
		d.mu.Lock()
		for _, ev := range d.got {
			view.Apply(ev)
		}
		d.mu.Unlock()
		for seq, shown := range view {
			m, err := c.st.Member(context.Background(), shown.ConversationID, d.user.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Active() || !m.Sees(seq) {
				continue // it stopped receiving when it left
			}
			want, _ := timeline.View(latest[seq], d.user.ID)
			// (When an edit was last does not matter once the message is deleted.)
			if shown.Text != want.Text || shown.Deleted != want.Deleted() || (!want.Deleted() && shown.EditedAt != editedAt(want)) {
				t.Fatalf("device %s shows message %d as %+v; the store has text %q, edited at %d, deleted %v",
					d.id, seq, shown, want.Text, editedAt(want), want.Deleted())
			}
			compared++
		}
	}
	delivered := 0
	for _, d := range devices {
		delivered += len(d.got)
		_ = d.client().Close()
	}
	t.Logf("checked %d users, %d devices, %d conversations: %d events in the stream, %d acks (%d distinct sends and revisions, %d refused after removal), %d edits, deletes and hides acked (%d refused), %d device views of a message compared with the store, %d deliveries, %d stored, %d reconnects, 1 gateway restart, 1 persister stop, presence and read receipts on",
		len(users), len(devices), len(convs), len(events), len(acks), len(byClientID), rejected.Load(), revisions.Load(), refused.Load(), compared, delivered, stored, sc.reconnects)
}

// sendUntilAnswered retries a send (same client message id) across reconnects of the device.
func sendUntilAnswered(ctx context.Context, d *device, conv, cmid, text string) (client.Ack, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := d.client().SendWithID(actx, conv, cmid, text)
		cancel()
		if err == nil || !(errors.Is(err, client.ErrClosed) || errors.Is(err, context.DeadlineExceeded)) || ctx.Err() != nil {
			return ack, err
		}
	}
}

// reviseUntilAnswered retries an edit, delete or hide (same client message id) across
// reconnects of the device.
func reviseUntilAnswered(ctx context.Context, d *device, kind, conv, cmid string, target uint64, text string) (client.Ack, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var (
			ack client.Ack
			err error
		)
		switch kind {
		case "edit":
			ack, err = d.client().EditWithID(actx, conv, cmid, target, text)
		default:
			ack, err = d.client().DeleteWithID(actx, conv, cmid, target, kind == "hide")
		}
		cancel()
		if err == nil || !(errors.Is(err, client.ErrClosed) || errors.Is(err, context.DeadlineExceeded)) || ctx.Err() != nil {
			return ack, err
		}
	}
}

func editedAt(m store.Message) int64 {
	if m.EditedAt.IsZero() {
		return 0
	}
	return m.EditedAt.UnixMilli()
}

func storedMessages(t *testing.T, st store.Store, conv string) []store.Message {
	var out []store.Message
	p := store.Page{Oldest: true, Limit: store.MaxPageLimit}
	for {
		page, err := st.Messages(context.Background(), conv, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		p.After = page[0].Seq
	}
}

func changeMembership(t *testing.T, sys *apptest.System, users []apptest.User, groups []string, member map[string][]string, rng *rand.Rand) {
	for _, g := range groups[:min(3, len(groups))] {
		ms := member[g]
		owner := userByID(users, ms[0])
		if len(ms) > 3 { // the owner removes the last member
			sys.Do("DELETE", "/v1/conversations/"+g+"/members/"+ms[len(ms)-1], owner.Token, nil, http.StatusOK, nil)
		}
		for {
			u := users[rng.IntN(len(users))]
			if !slices.Contains(ms, u.ID) {
				sys.Do("POST", "/v1/conversations/"+g+"/members", owner.Token, map[string]any{"user_ids": []string{u.ID}}, http.StatusOK, nil)
				sys.Do("POST", "/v1/conversations/"+g+"/accept", u.Token, nil, http.StatusOK, nil)
				break
			}
		}
	}
}

func userByID(users []apptest.User, id string) apptest.User {
	for _, u := range users {
		if u.ID == id {
			return u
		}
	}
	panic("no user " + id)
}

func streamHead(t *testing.T, c *cluster) uint64 {
	st, err := c.js.Stream(context.Background(), streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// streamEvents reads every timeline event in (from, to] straight from the stream.
func streamEvents(t *testing.T, c *cluster, from, to uint64) []store.Message {
	st, err := c.js.Stream(context.Background(), streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Message
	for seq := from + 1; seq <= to; seq++ {
		raw, err := st.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatalf("stream seq %d: %v", seq, err)
		}
		m, ok, err := timeline.FromStream(raw.Subject, raw.Sequence, raw.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func waitStored(t *testing.T, c *cluster, head uint64) {
	r := timeline.New(c.st, c.js)
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := r.Marks(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.Stored >= head {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("persister at %d of %d after 60s", m.Stored, head)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func storedSeqs(t *testing.T, st store.Store, conv string) []uint64 {
	var out []uint64
	p := store.Page{Oldest: true, Limit: store.MaxPageLimit}
	for {
		page, err := st.Messages(context.Background(), conv, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for i := len(page) - 1; i >= 0; i-- {
			out = append(out, page[i].Seq)
		}
		p.After = page[0].Seq
	}
}

func seqsOf(evs []client.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func diff(got, want []uint64) string {
	var missing, extra []uint64
	for _, s := range want {
		if !slices.Contains(got, s) {
			missing = append(missing, s)
		}
	}
	for _, s := range got {
		if !slices.Contains(want, s) {
			extra = append(extra, s)
		}
	}
	ordered := slices.IsSorted(got) && len(slices.Compact(slices.Clone(got))) == len(got)
	return fmt.Sprintf("got %d events, want %d; missing %v; unexpected %v; strictly ordered %v",
		len(got), len(want), head(missing), head(extra), ordered)
}

func head(s []uint64) []uint64 { return s[:min(len(s), 10)] }

// explain describes the first missing events of a device: each one's conversation and kind,
// the user's membership there as the store has it now, and the seqs the device got around it
// in that conversation.
func explain(c *cluster, events []store.Message, userID string, got, want []uint64) string {
	byConv := map[string][]uint64{}
	convOf := map[uint64]store.Message{}
	for _, ev := range events {
		convOf[ev.Seq] = ev
	}
	for _, s := range got {
		byConv[convOf[s].ConversationID] = append(byConv[convOf[s].ConversationID], s)
	}
	var b strings.Builder
	n := 0
	for _, s := range want {
		if slices.Contains(got, s) {
			continue
		}
		if n++; n > 5 {
			break
		}
		ev := convOf[s]
		fmt.Fprintf(&b, "\n  missing %d: %s in %s", s, ev.Kind, ev.ConversationID)
		ms, err := c.st.Members(context.Background(), ev.ConversationID)
		if err != nil {
			fmt.Fprintf(&b, " (members: %v)", err)
			continue
		}
		for _, m := range ms {
			if m.UserID == userID {
				fmt.Fprintf(&b, "; member joined %d left %d earlier %v", m.JoinedSeq, m.LeftSeq, m.Earlier)
			}
		}
		page, err := c.st.Messages(context.Background(), ev.ConversationID, store.Page{After: s - 1, Oldest: true, Limit: 1})
		fmt.Fprintf(&b, "; in the store %v", err == nil && len(page) == 1 && page[0].Seq == s)
		mine := byConv[ev.ConversationID]
		i, _ := slices.BinarySearch(mine, s)
		fmt.Fprintf(&b, "; got there %v", mine[max(i-3, 0):min(i+3, len(mine))])
	}
	return b.String()
}
