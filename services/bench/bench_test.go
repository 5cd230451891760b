package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/services/app/apptest"
)

func TestMain(m *testing.M) {
	RunChildIfAsked() // the memory scenario starts this test binary as its idle clients
	code := m.Run()
	stopShared()
	if code == 0 {
		if err := goleak.Find(apptest.IgnoreLibraryGoroutines()...); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// TestHarnessTiny runs the whole bench at a tiny size and checks that the report is complete and
// sane. It asserts no timing: only that every figure was measured and every ratio computed.
func TestHarnessTiny(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Users = 4
	cfg.GroupSize = 4
	cfg.IdleConns = 20
	cfg.Window = 4
	cfg.Duration = 700 * time.Millisecond
	cfg.Warmup = 200 * time.Millisecond
	cfg.Progress = testWriter{t}
	cfg.Settle = 15 * time.Second
	cfg.Command = "go test"
	cfg.Log = zap.NewNop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	b := rep.Baselines
	if b.JetStreamAsync == nil || b.JetStreamAsync.Count == 0 || b.JetStreamAsync.PerSec <= 0 {
		t.Errorf("JetStream baseline missing or empty: %+v", b.JetStreamAsync)
	}
	if b.JetStreamSync == nil || b.JetStreamSync.Latency.Count == 0 {
		t.Errorf("JetStream sync baseline missing: %+v", b.JetStreamSync)
	}
	if b.WSEchoRTT == nil || b.WSEchoRTT.Latency.Count == 0 {
		t.Errorf("echo round-trip baseline missing: %+v", b.WSEchoRTT)
	}
	if b.WSEchoPipelined == nil || b.WSEchoPipelined.Count == 0 {
		t.Errorf("echo pipelined baseline missing: %+v", b.WSEchoPipelined)
	}
	if b.WSEchoIdle == nil || b.WSEchoIdle.Held != cfg.IdleConns || b.WSEchoIdle.BytesPerConn == 0 {
		t.Errorf("echo idle baseline: %+v", b.WSEchoIdle)
	}

	wantPhases := []struct{ scenario, mode string }{{Scenario1to1, ModeFlat}, {Scenario1to1, ModePaced}}
	if rep.GroupSkipped == "" {
		wantPhases = append(wantPhases, struct{ scenario, mode string }{ScenarioGroup, ModeFlat},
			struct{ scenario, mode string }{ScenarioGroup, ModePaced})
	} else {
		t.Logf("%s", rep.GroupSkipped)
	}
	for _, w := range wantPhases {
		p := rep.phase(w.scenario, w.mode)
		if p == nil {
			t.Errorf("phase %s %s missing", w.scenario, w.mode)
			continue
		}
		members := 2
		if w.scenario == ScenarioGroup {
			members = cfg.GroupSize
		}
		switch {
		case p.Members != members:
			t.Errorf("%s: %d members per conversation, want %d", p.Name, p.Members, members)
		case p.Sent == 0 || p.Acked == 0 || p.Delivered == 0:
			t.Errorf("%s: sent %d, acked %d, delivered %d", p.Name, p.Sent, p.Acked, p.Delivered)
		case p.Acked != p.Sent:
			t.Errorf("%s: %d sent but %d acked", p.Name, p.Sent, p.Acked)
		case p.Missing != 0:
			t.Errorf("%s: %d deliveries missing (acked %d × %d devices)", p.Name, p.Missing, p.Acked, members)
		case len(p.Errors) != 0:
			t.Errorf("%s: errors %v", p.Name, p.Errors)
		case p.AckedPerSec <= 0 || p.DeliveriesPerSec <= 0 || p.DeliveredMsgsPerSec <= 0:
			t.Errorf("%s: rates %v acked/s, %v deliveries/s, %v delivered msgs/s", p.Name, p.AckedPerSec, p.DeliveriesPerSec, p.DeliveredMsgsPerSec)
		case p.AckLatency.Count == 0 || p.DeliverLatency.Count == 0 || p.AckLatency.P50 <= 0 || p.DeliverLatency.P99 < p.DeliverLatency.P50:
			t.Errorf("%s: latencies ack %+v deliver %+v", p.Name, p.AckLatency, p.DeliverLatency)
		case p.CPUSeconds <= 0 || p.CPUPer1000Msgs <= 0:
			t.Errorf("%s: cpu %v s, %v s/1000 msgs", p.Name, p.CPUSeconds, p.CPUPer1000Msgs)
		case len(p.Stages) != 3 || len(p.Timeline) == 0:
			t.Errorf("%s: natter's stages %+v, %d timeline slots", p.Name, p.Stages, len(p.Timeline))
		case p.ConnectionsHeld != cfg.Users*cfg.Devices:
			t.Errorf("%s: %d connections held, want %d", p.Name, p.ConnectionsHeld, cfg.Users*cfg.Devices)
		}
		// Deliveries per message: every device of every member, the sender's own included.
		if p.Delivered != p.Acked*uint64(members*cfg.Devices) {
			t.Errorf("%s: %d deliveries for %d messages to %d members", p.Name, p.Delivered, p.Acked, members)
		}
	}
	if p := rep.phase(Scenario1to1, ModePaced); p != nil && p.TargetRate <= 0 {
		t.Errorf("paced phase without a rate: %+v", p)
	}

	if m := rep.Memory; m == nil || m.Held != cfg.IdleConns || m.BytesPerConn == 0 || m.Method != "heap+stack" {
		t.Errorf("memory: %+v", rep.Memory)
	}

	if len(rep.Figures) == 0 {
		t.Fatal("no figures")
	}
	for _, f := range rep.Figures {
		if len(f.Values) == 0 || len(f.Ratios) != len(f.Values) {
			t.Errorf("figure %q: values %v ratios %v", f.Name, f.Values, f.Ratios)
			continue
		}
		// The memory of 20 idle connections (under 1 MB) is smaller than what the in-process
		// natter's background work (search's batches and segment merges) frees or takes between
		// the two readings, RSS or heap: its sign is noise at this size.
		if strings.HasPrefix(f.Name, "memory per idle connection") {
			continue
		}
		for i, r := range f.Ratios {
			if r <= 0 {
				t.Errorf("figure %q: ratio %d is %v", f.Name, i, r)
			}
		}
	}
	if len(rep.Targets) != 3+boolInt(rep.GroupSkipped == "") {
		t.Errorf("targets: %+v", rep.Targets)
	}

	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back.Figures) != len(rep.Figures) {
		t.Errorf("JSON does not round-trip: %v", err)
	}
	buf.Reset()
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"accepted msgs/s", "send→deliver", "memory per idle connection", "targets"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
	t.Logf("\n%s", buf.String())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s %s", time.Now().Format("15:04:05.000"), bytes.TrimSpace(b))
	return len(b), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestMsgIDRoundTrip(t *testing.T) {
	for _, id := range []msgID{{}, {phase: 1, conn: 0, n: 1, sent: 1}, {phase: 0xffffffff, conn: 1 << 20, n: 1<<64 - 1, sent: 1<<63 - 1}} {
		b := appendMsgID(nil, id)
		got, ok := parseMsgID(b)
		if !ok || got != id {
			t.Errorf("%s: got %+v %v, want %+v", b, got, ok, id)
		}
		if len(b) > 64 {
			t.Errorf("%s: longer than a client_msg_id may be", b)
		}
	}
	for _, bad := range []string{"", "B", "B1-2-3", "x1-2-3-4", "B1-2-3-", "B1-2-3-4-5", "B1-2-3-G", "B1--3-4"} {
		if _, ok := parseMsgID([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0.999, 999 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.04 || d < -0.04 {
			t.Errorf("q%v = %v, want %v ± 4%%", c.q, got, c.want)
		}
	}
	var empty hist
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
}

func TestFrameFieldScan(t *testing.T) {
	ack := []byte(`{"type":"ack","ref":"B1-2-3-4","client_msg_id":"B1-2-3-4","conversation_id":"c","message_id":"m","seq":7,"sent_at":1}`)
	if !bytes.HasPrefix(ack, prefixAck) || string(field(ack, keyClientMsg)) != "B1-2-3-4" {
		t.Errorf("ack not recognised")
	}
	if field([]byte(`{"type":"welcome"}`), keyClientMsg) != nil {
		t.Error("found a field that is not there")
	}
}
