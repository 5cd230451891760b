package asyncapi_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/streams"
)

// recorder keeps every message published under the spec's subject prefixes: chat.>, presence.>,
// push.>, gw.>, $KV.routes.> and so on, one for each channel's address up to its first parameter.
type recorder struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	subs []*nats.Subscription
}

func record(t *testing.T, sp *spec, nc *nats.Conn) *recorder {
	t.Helper()
	r := &recorder{}
	var prefixes []string
	for _, ch := range sp.channels {
		p, _, _ := strings.Cut(ch.address, "{")
		if !strings.HasSuffix(p, ".") {
			t.Fatalf("channel %s: address %s does not start with a fixed token", ch.name, ch.address)
		}
		if !slices.Contains(prefixes, p) {
			prefixes = append(prefixes, p)
		}
	}
	for _, p := range prefixes {
		sub, err := nc.Subscribe(p+">", func(m *nats.Msg) {
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		r.subs = append(r.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

// check validates everything recorded so far against its channel (a subject under a prefix that
// no channel matches fails) and returns how many messages each channel had.
func (r *recorder) check(t *testing.T, sp *spec, nc *nats.Conn) map[string]int {
	t.Helper()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range r.subs {
		_ = sub.Unsubscribe()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	got := map[string]int{}
	for _, m := range r.msgs {
		if op := m.Header.Get("KV-Operation"); op != "" || len(m.Data) == 0 {
			continue // a KV delete or purge marker carries no value
		}
		if checkSubject(t, sp, m.Subject, m.Data) {
			got[sp.channelOf(m.Subject).name]++
		}
	}
	return got
}

// checkSubject validates one payload against the channel of its subject.
func checkSubject(t *testing.T, sp *spec, subject string, data []byte) bool {
	t.Helper()
	ch := sp.channelOf(subject)
	if ch == nil {
		t.Errorf("%s: no channel of docs/asyncapi.yaml matches this subject: %s", subject, data)
		return false
	}
	if ch.binary {
		d, err := streams.DecodeDelivery(data)
		if err != nil {
			t.Errorf("%s: %v: %x", subject, err, data)
			return false
		}
		if data, err = json.Marshal(d); err != nil {
			t.Fatal(err)
		}
	}
	check(t, ch.payload, subject, data)
	return true
}

// checkChatStream reads every event of the CHAT stream and validates it; it returns the count
// of each kind.
func checkChatStream(t *testing.T, sp *spec, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("CHAT seq %d: %v", seq, err)
		}
		checkSubject(t, sp, m.Subject, m.Data)
		_, kind, _ := streams.ParseChatSubject(m.Subject)
		kinds[kind]++
	}
	return kinds
}

// checkBuckets validates the current value of every key of every bucket the spec names; it
// returns how many values each bucket had.
func checkBuckets(t *testing.T, sp *spec, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx := context.Background()
	got := map[string]int{}
	for _, ch := range sp.channels {
		if ch.bucket == "" {
			continue
		}
		kv, err := js.KeyValue(ctx, ch.bucket)
		if err != nil {
			t.Fatalf("bucket %s: %v", ch.bucket, err)
		}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys.Keys() {
			e, err := kv.Get(ctx, k)
			if err != nil {
				continue // deleted or expired since listed
			}
			checkSubject(t, sp, "$KV."+ch.bucket+"."+k, e.Value())
			got[ch.bucket]++
		}
	}
	return got
}
