package deploy

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/natsperm"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/api"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/services/recovery"
	"github.com/natter-chat/natter/services/search/wire"
	"github.com/natter-chat/natter/streams"
)

// deployOptions are the stream options deploy/nats/users.conf is generated for: the README's
// deployment, with four fanout partitions.
func deployOptions() streams.Options {
	o := streams.DefaultOptions()
	o.FanoutPartitions = 4
	return o
}

const usersConf = "../../deploy/nats/users.conf"

// TestUsersConfIsGenerated keeps deploy/nats/users.conf what pkg/natsperm generates
// (NATTER_UPDATE_USERS_CONF=1 rewrites it).
func TestUsersConfIsGenerated(t *testing.T) {
	want, err := natsperm.Config(natsperm.DeployUsers(), deployOptions())
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("NATTER_UPDATE_USERS_CONF") == "1" {
		if err := os.WriteFile(usersConf, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(usersConf)
	if err != nil {
		t.Fatal(err)
	}
	compose, err := os.ReadFile("../../deploy/nats/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range natsperm.DeployUsers() {
		if !strings.Contains(string(compose), "- "+natsperm.PasswordVar(u.Name)+"\n") {
			t.Errorf("docker-compose.yml does not pass %s to nats-server", natsperm.PasswordVar(u.Name))
		}
	}
	if string(got) != want {
		t.Fatalf("%s differs from what natter nats-users generates; regenerate it with\n  NATTER_UPDATE_USERS_CONF=1 go test -run TestUsersConfIsGenerated ./test/deploy/", usersConf)
	}
}

// violations records the permission violations nats-server logs.
type violations struct {
	mu   sync.Mutex
	seen []string
}

func (v *violations) Noticef(string, ...any) {}
func (v *violations) Warnf(string, ...any)   {}
func (v *violations) Fatalf(string, ...any)  {}
func (v *violations) Debugf(string, ...any)  {}
func (v *violations) Tracef(string, ...any)  {}
func (v *violations) Errorf(format string, args ...any) {
	if line := fmt.Sprintf(format, args...); strings.Contains(line, "Violation") {
		v.mu.Lock()
		v.seen = append(v.seen, line)
		v.mu.Unlock()
	}
}

// wait reports whether a violation naming subject is logged within timeout.
func (v *violations) wait(subject string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		v.mu.Lock()
		found := slices.ContainsFunc(v.seen, func(line string) bool { return strings.Contains(line, subject) })
		v.mu.Unlock()
		if found {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor reports whether a violation of the connection named conn of a subject that starts
// with subject is logged within timeout.
func (v *violations) waitFor(conn, subject string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		v.mu.Lock()
		found := slices.ContainsFunc(v.seen, func(line string) bool {
			return strings.Contains(line, `Subject "`+subject) && strings.Contains(line, ":"+conn+`"`)
		})
		v.mu.Unlock()
		if found {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (v *violations) take() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := v.seen
	v.seen = nil
	return out
}

// startAuthServer boots nats-server from deploy/nats/users.conf with a password for every user.
func startAuthServer(t *testing.T) (*server.Server, map[string]string, *violations) {
	t.Helper()
	dir := t.TempDir()
	users, err := os.ReadFile(usersConf)
	if err != nil {
		t.Fatal(err)
	}
	passwords := map[string]string{}
	for _, u := range natsperm.DeployUsers() {
		passwords[u.Name] = "pw-" + u.Name
		t.Setenv(natsperm.PasswordVar(u.Name), passwords[u.Name])
	}
	if err := os.WriteFile(filepath.Join(dir, "users.conf"), users, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("listen: 127.0.0.1:-1\nmax_payload: 8MB\njetstream { store_dir: %q }\ninclude ./users.conf\n", filepath.Join(dir, "js"))
	if err := os.WriteFile(filepath.Join(dir, "nats.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	v := &violations{}
	srv.SetLoggerV2(v, false, false, false)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("permission violations:\n%s", strings.Join(v.take(), "\n"))
		}
	})
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return srv, passwords, v
}

// TestEveryTargetWorksWithItsLeastPrivilegeUser boots nats-server with deploy/nats/users.conf,
// applies the definitions as the admin user (natter init), runs every target as a process of its
// own with its own user, and drives every path between them: sign-up, conversations, groups,
// discovery, chat, typing, receipts, presence, history, mute and a push. nats-server must log no
// permission violation. Then the gateway's credentials try what is outside its role and are
// refused.
func TestEveryTargetWorksWithItsLeastPrivilegeUser(t *testing.T) {
	srv, passwords, violated := startAuthServer(t)
	url := srv.ClientURL()
	opts := deployOptions()
	log := zap.NewNop()
	admin, err := natsx.Connect(url, "admin", nil, log, nats.UserInfo("admin", passwords["admin"]))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adminJS, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := natsx.Apply(ctx, adminJS, streams.Define(opts)); err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.Connect(url, "nobody", nil, log); err == nil {
		t.Fatal("a connection without credentials was let in")
	}

	secret := []byte("0123456789abcdef0123456789abcdef")
	start := func(user string, targets ...string) *apptest.System {
		cfg := app.DefaultConfig()
		cfg.SpareProc = false // processes share the test process
		cfg.Targets = targets
		cfg.DataDir = t.TempDir()
		cfg.NATSURL = url
		cfg.NATSClient = natsx.ClientConfig{User: user, Password: passwords[user], InboxPrefix: natsx.UserInbox(user)}
		cfg.ApplyDefinitions = false
		cfg.Streams = opts
		cfg.JWTSecret = secret
		cfg.MetricsAddr = ""
		cfg.StoreKind = "remote"
		if slices.Contains(targets, natsperm.Store) {
			cfg.StoreKind = "pebble"
		}
		cfg.API.Addr, cfg.Gateway.Addr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.API.PasswordCost, cfg.API.Limits, cfg.API.HashWait = auth.MinPasswordCost, api.NoLimits(), time.Minute
		return apptest.StartConfig(t, cfg)
	}
	start(natsperm.Store, natsperm.Store)
	for _, target := range []string{natsperm.Persister, natsperm.Fanout, natsperm.Presence, natsperm.Push} {
		start(target, target)
	}
	gw := start(natsperm.Gateway, natsperm.Gateway)
	s := start(natsperm.API, natsperm.API)
	chat(t, s, gw.WSURL, adminJS)
	if v := violated.take(); len(v) > 0 {
		t.Fatalf("permission violations:\n%s", strings.Join(v, "\n"))
	}

	// The gateway's credentials, outside the gateway's role.
	gwConn, err := natsx.Connect(url, "gateway", nil, log, nats.UserInfo("gateway", passwords["gateway"]), nats.CustomInboxPrefix(natsx.UserInbox("gateway")))
	if err != nil {
		t.Fatal(err)
	}
	defer gwConn.Close()
	js, err := jetstream.New(gwConn)
	if err != nil {
		t.Fatal(err)
	}
	// Each refusal is shown by nats-server's own violation log naming the subject, not by a
	// timeout alone. A refused request is never answered: the attempts run side by side.
	var attempts sync.WaitGroup
	refused := func(what, subject string, op func(ctx context.Context) error) {
		attempts.Go(func() {
			octx, ocancel := context.WithTimeout(ctx, time.Second)
			defer ocancel()
			if err := op(octx); err == nil {
				t.Errorf("gateway user: %s succeeded", what)
				return
			}
			if !violated.wait(subject, 10*time.Second) {
				t.Errorf("gateway user: %s: nats-server logged no violation for %s", what, subject)
			}
		})
	}
	chatStream, err := js.Stream(ctx, streams.ChatStream) // the gateway may look CHAT up
	if err != nil {
		t.Fatal(err)
	}
	refused("purge CHAT", "$JS.API.STREAM.PURGE.CHAT", func(ctx context.Context) error { return chatStream.Purge(ctx) })
	refused("delete the persister consumer", "$JS.API.CONSUMER.DELETE.CHAT.persister", func(ctx context.Context) error {
		return js.DeleteConsumer(ctx, streams.ChatStream, streams.PersisterConsumer)
	})
	refused("create a consumer on PUSH", "$JS.API.CONSUMER.CREATE.PUSH.spy", func(ctx context.Context) error {
		_, err := js.CreateOrUpdateConsumer(ctx, streams.PushStream, jetstream.ConsumerConfig{Durable: "spy", FilterSubject: streams.PushAll})
		return err
	})
	refused("change CHAT", "$JS.API.STREAM.UPDATE.CHAT", func(ctx context.Context) error {
		_, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: streams.ChatStream, Subjects: []string{streams.ChatAll}, MaxAge: time.Second})
		return err
	})
	refused("look at the push consumer", "$JS.API.CONSUMER.INFO.PUSH.push", func(ctx context.Context) error {
		_, err := js.Consumer(ctx, streams.PushStream, streams.PushConsumer)
		return err
	})
	refused("publish a membership change", "chat.c1.member", func(ctx context.Context) error {
		_, err := js.Publish(ctx, streams.ChatSubject("c1", streams.KindMember), []byte(`{}`))
		return err
	})
	refused("publish a push request", "push.u1", func(ctx context.Context) error {
		_, err := js.Publish(ctx, streams.PushSubject("u1"), []byte(`{}`))
		return err
	})
	attempts.Wait()
	for _, subject := range []string{streams.PushAll, "_INBOX.api.>", natsperm.StoreSubjects} {
		if _, err := gwConn.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		if !violated.wait(subject, 10*time.Second) {
			t.Errorf("gateway user: subscribing to %s was not refused", subject)
		}
	}
	// Nothing changed: CHAT still holds its events, the persister consumer is there.
	chatStream, err = adminJS.Stream(ctx, streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := chatStream.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		t.Fatalf("CHAT after the refused purge: %+v %v", info, err)
	}
	if _, err := adminJS.Consumer(ctx, streams.ChatStream, streams.PersisterConsumer); err != nil {
		t.Fatalf("persister consumer after the refused delete: %v", err)
	}
	consentReadersSeeNoAccounts(t, url, passwords, s, violated)
}

// consentReadersSeeNoAccounts: the users of the processes that enforce consent (gateway,
// fanout, presence, push) follow consent through CONSENT, and every way to read STATE — where
// account events carry password hashes — is refused: a direct get, a stream message get, a
// consumer of their own, a pull from the projector's, a subscription to the account subjects.
func consentReadersSeeNoAccounts(t *testing.T, url string, passwords map[string]string, s *apptest.System, violated *violations) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dora, erin := s.SignUp("dora"), s.SignUp("erin")
	s.Do("PUT", "/v1/blocks/"+erin.ID, dora.Token, nil, http.StatusNoContent, nil)
	for _, user := range []string{natsperm.Gateway, natsperm.Fanout, natsperm.Presence, natsperm.Push} {
		name := "spy-" + user
		nc, err := natsx.Connect(url, name, nil, zap.NewNop(), nats.UserInfo(user, passwords[user]), nats.CustomInboxPrefix(natsx.UserInbox(user)))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		// What the role needs: the consent table fills, with the block the API just recorded.
		tb, err := consent.Watch(ctx, js, zap.NewNop())
		if err != nil {
			t.Fatalf("%s user: consent table: %v", user, err)
		}
		blocked := tb.Blocked(dora.ID, erin.ID)
		if err := tb.Sync(ctx, 5*time.Second); err != nil {
			t.Errorf("%s user: consent barrier: %v", user, err)
		}
		tb.Stop()
		if !blocked {
			t.Errorf("%s user: the consent table does not hold dora's block", user)
		}

		var attempts sync.WaitGroup
		refused := func(what, subject string, op func(ctx context.Context) error) {
			attempts.Go(func() {
				octx, ocancel := context.WithTimeout(ctx, time.Second)
				defer ocancel()
				if err := op(octx); err == nil {
					t.Errorf("%s user: %s succeeded", user, what)
					return
				}
				if !violated.waitFor(name, subject, 10*time.Second) {
					t.Errorf("%s user: %s: nats-server logged no violation for %s", user, what, subject)
				}
			})
		}
		account := streams.AccountSubject("dora")
		request := func(subject, body string) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				m, err := nc.RequestWithContext(ctx, subject, []byte(body))
				if err == nil {
					return fmt.Errorf("answered: %s", m.Data)
				}
				return err
			}
		}
		refused("direct get of an account event", "$JS.API.DIRECT.GET.STATE."+account, request("$JS.API.DIRECT.GET.STATE."+account, ""))
		refused("message get of an account event", "$JS.API.STREAM.MSG.GET.STATE", request("$JS.API.STREAM.MSG.GET.STATE", `{"last_by_subj":"`+account+`"}`))
		refused("a consumer on STATE", "$JS.API.CONSUMER.CREATE.STATE", func(ctx context.Context) error {
			_, err := js.OrderedConsumer(ctx, streams.StateStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"state.account.>"}})
			return err
		})
		refused("a pull from the projector's consumer on STATE", "$JS.API.CONSUMER.MSG.NEXT.STATE.projector",
			request("$JS.API.CONSUMER.MSG.NEXT.STATE."+streams.ProjectorConsumer, `{"batch":1,"no_wait":true}`))
		attempts.Wait()
		if _, err := nc.SubscribeSync("state.account.*"); err != nil {
			t.Fatal(err)
		}
		if !violated.waitFor(name, "state.account.*", 10*time.Second) {
			t.Errorf("%s user: subscribing to state.account.* was not refused", user)
		}
	}
}

// TestAllInOneUserRunsEveryTarget: the natter user runs every target in one process.
func TestAllInOneUserRunsEveryTarget(t *testing.T) {
	srv, passwords, violated := startAuthServer(t)
	url := srv.ClientURL()
	admin, err := natsx.Connect(url, "admin", nil, zap.NewNop(), nats.UserInfo("admin", passwords["admin"]))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adminJS, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := natsx.Apply(ctx, adminJS, streams.Define(deployOptions())); err != nil {
		t.Fatal(err)
	}
	s := apptest.Start(t, func(c *app.Config) {
		c.Targets = append(slices.Clone(app.AllTargets), app.TargetStore)
		c.NATSURL = url
		c.NATSClient = natsx.ClientConfig{User: "natter", Password: passwords["natter"], InboxPrefix: natsx.UserInbox("natter")}
		c.ApplyDefinitions = false
		c.Streams = deployOptions()
	})
	chat(t, s, s.WSURL, adminJS)
	if v := violated.take(); len(v) > 0 {
		t.Fatalf("permission violations:\n%s", strings.Join(v, "\n"))
	}
}

// chat drives every path between the targets through the API at s and the gateway at wsURL.
func chat(t *testing.T, s *apptest.System, wsURL string, adminJS jetstream.JetStream) {
	t.Helper()
	const wait = 15 * time.Second
	alice, bob, carol := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("carol")
	s.Do("PUT", "/v1/devices/phone/push-token", bob.Token, map[string]string{"platform": "android", "token": "fcm-token-bob"}, 0, nil)
	conv := s.Direct(alice, bob)
	var group struct {
		Conversation struct {
			ID string `json:"id"`
		} `json:"conversation"`
	}
	s.Do("POST", "/v1/groups", alice.Token, map[string]any{"name": "g", "member_ids": []string{bob.ID}}, 0, &group)
	s.Do("POST", "/v1/conversations/"+group.Conversation.ID+"/accept", bob.Token, nil, 0, nil)
	s.Do("POST", "/v1/conversations/"+group.Conversation.ID+"/members", alice.Token, map[string]any{"user_ids": []string{carol.ID}}, 0, nil)
	s.Do("POST", "/v1/conversations/"+group.Conversation.ID+"/accept", carol.Token, nil, 0, nil)
	s.Do("PUT", "/v1/conversations/"+group.Conversation.ID+"/mute", carol.Token, map[string]any{"muted": true}, 0, nil)
	// Discovery reads the gateways bucket; it lists the gateway once the gateway announced.
	deadline := time.Now().Add(wait)
	for {
		if got, err := apptest.Discover(s.APIURL)(context.Background()); err == nil && got == wsURL {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("discovery never listed the gateway")
		}
		time.Sleep(50 * time.Millisecond)
	}
	a := apptest.Dial(t, apptest.WSURLFor(wsURL, alice.Token, "laptop", nil))
	a.NextOf(protocol.TypeSynced, wait)
	b := apptest.Dial(t, apptest.WSURLFor(wsURL, bob.Token, "phone", nil))
	b.NextOf(protocol.TypeSynced, wait)
	a.Send(protocol.ClientFrame{Type: protocol.TypePresence, UserIDs: []string{bob.ID}})
	a.NextOf(protocol.TypePresence, wait)
	a.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: "m1", Text: "hello"})
	ack := a.NextOf(protocol.TypeAck, wait)
	if m := b.NextOf(protocol.TypeMessage, wait); m.Text != "hello" {
		t.Fatalf("bob got %+v", m)
	}
	a.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: "m1", Text: "hello"})
	if dup := a.NextOf(protocol.TypeAck, wait); !dup.Duplicate {
		t.Fatalf("a resend was not answered as a duplicate: %+v", dup)
	}
	a.Send(protocol.ClientFrame{Type: protocol.TypeTyping, ConversationID: conv, State: protocol.TypingStart})
	b.NextOf(protocol.TypeTyping, wait)
	b.Send(protocol.ClientFrame{Type: protocol.TypeRead, ConversationID: conv, UpTo: ack.Seq})
	a.NextOf(protocol.TypeReceipt, wait)
	// Bob goes offline: alice hears it (presence), and his next message is pushed.
	_ = b.Conn.Close(1000, "bye")
	for {
		f := a.NextOf(protocol.TypePresence, wait)
		if strings.Contains(string(f.Raw), `"offline"`) {
			break
		}
	}
	a.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: "m2", Text: "are you there"})
	second := a.NextOf(protocol.TypeAck, wait)
	ledger, err := adminJS.KeyValue(context.Background(), streams.PushLedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(wait)
	for {
		e, err := ledger.Get(context.Background(), streams.PushLedgerKey(bob.ID, second.MessageID, "phone"))
		if err == nil && strings.Contains(string(e.Value()), streams.PushSent) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no push sent to bob for %s: %v", second.MessageID, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A reconnect syncs from the stream and the store; history comes from the store.
	zero := uint64(0)
	b2 := apptest.Dial(t, apptest.WSURLFor(wsURL, bob.Token, "phone", &zero))
	b2.NextOf(protocol.TypeSynced, wait)
	deadline = time.Now().Add(wait)
	for {
		var page struct {
			Messages []struct {
				Text string `json:"text"`
			} `json:"messages"`
		}
		s.Do("GET", "/v1/conversations/"+conv+"/messages", bob.Token, nil, http.StatusOK, &page)
		if len(page.Messages) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history holds %d messages, want 2", len(page.Messages))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEveryTargetHasPermissions: a target added to natter run must get its NATS permissions in
// pkg/natsperm (and a user in deploy/nats/users.conf).
func TestEveryTargetHasPermissions(t *testing.T) {
	for _, target := range app.KnownTargets {
		if _, err := natsperm.ForTarget(target, deployOptions()); err != nil {
			t.Errorf("target %s: %v", target, err)
		}
		if target != natsperm.NATS && !slices.Contains(natsperm.Targets, target) {
			t.Errorf("target %s has no user in natsperm.Targets", target)
		}
	}
}

// The search process answers on natsperm.SearchSubjects, which the API may publish.
func TestSearchSubjectsAreCovered(t *testing.T) {
	o := deployOptions()
	search, err := natsperm.ForTarget(natsperm.Search, o)
	if err != nil {
		t.Fatal(err)
	}
	api, err := natsperm.ForTarget(natsperm.API, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{wire.SubjectQuery, wire.SubjectStatus, wire.SubjectRebuild} {
		if !subjectAllowed(search.Subscribe, subj) {
			t.Errorf("the search target may not subscribe to %s", subj)
		}
		if !subjectAllowed(api.Publish, subj) {
			t.Errorf("the api target may not publish %s", subj)
		}
	}
}

// subjectAllowed reports whether one of the allow-list patterns matches subject.
func subjectAllowed(allow []string, subject string) bool {
	for _, pattern := range allow {
		if subjectMatches(pattern, subject) {
			return true
		}
	}
	return false
}

func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// The process holding the store answers natter backup on natsperm.BackupSubject.
func TestBackupSubjectIsCovered(t *testing.T) {
	if natsperm.BackupSubject != recovery.BackupSubject {
		t.Fatalf("natsperm.BackupSubject %q, services/recovery answers on %q", natsperm.BackupSubject, recovery.BackupSubject)
	}
}
