package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/natter-chat/natter/pkg/procstat"
)

// LoadResult is one load phase against natter.
type LoadResult struct {
	Name          string  `json:"name"`
	Scenario      string  `json:"scenario"`
	Mode          string  `json:"mode"`
	TargetRate    float64 `json:"target_rate,omitempty"` // paced: messages/s asked for
	Conversations int     `json:"conversations"`
	Members       int     `json:"members_per_conversation"`
	Devices       int     `json:"devices_per_user"`
	Senders       int     `json:"senders"`
	Connections   int     `json:"connections"`
	Window        int     `json:"window,omitempty"`
	MsgSize       int     `json:"msg_size"`

	// Totals over the whole phase (warm-up and settling included).
	Sent      uint64            `json:"sent"`
	Late      uint64            `json:"late,omitempty"` // paced sends skipped: 1024 already outstanding
	Acked     uint64            `json:"acked"`
	Delivered uint64            `json:"delivered"`
	Missing   uint64            `json:"missing"` // deliveries owed (acked x members x devices) but not seen
	Errors    map[string]uint64 `json:"errors"`  // error frames by code

	// Over the measured window.
	Seconds float64 `json:"seconds"`
	// AckedPerSec: sends acknowledged (durable in JetStream).
	AckedPerSec float64 `json:"acked_per_sec"`
	// DeliveredMsgsPerSec: messages that reached the other members, counted on each other
	// member's first device and divided by (members-1): whole messages delivered per second.
	DeliveredMsgsPerSec float64 `json:"delivered_msgs_per_sec"`
	// DeliveriesPerSec: every message frame any device received (the sender's own devices too).
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	AckLatency       Latency `json:"send_to_ack"`
	// DeliverLatency: send -> message frame on every device but the sending one.
	DeliverLatency Latency `json:"send_to_deliver"`

	CPUSeconds           float64 `json:"cpu_seconds"`
	CPUPer1000Msgs       float64 `json:"cpu_s_per_1000_msgs"`
	CPUPer1000Deliveries float64 `json:"cpu_s_per_1000_deliveries"`
	// Calls: the server's read and write system calls over the span its CPU is counted (natter
	// bench peers; nil: not measured).
	Calls *procstat.Calls `json:"calls,omitempty"`
	// CPUIncludesClients: natter ran in-process, so the CPU time includes the simulated clients.
	CPUIncludesClients bool `json:"cpu_includes_clients"`
	// OtherCores: cores other processes on the machine kept busy during the measured window; a
	// figure taken with this well above 0 measures the machine's other work too (-1: unknown).
	OtherCores float64 `json:"other_cores"`

	// Timeline is the measured window in 100 ms slots: acks and deliveries (other devices than
	// the sender's) seen, and the worst latency of each.
	Timeline []Tick `json:"timeline,omitempty"`
	// Stages are natter's own timings over the measured window (when its metrics are known).
	Stages []Stage `json:"stages,omitempty"`
	// BacklogAtEnd: CHAT events natter's persister and fanout had not handled when sending
	// stopped (in-process only); SettleSeconds: how long they and the deliveries took to finish.
	BacklogAtEnd    uint64   `json:"backlog_at_end"`
	ConnectionsHeld int      `json:"connections_held"`
	SettleSeconds   float64  `json:"settle_seconds"`
	Notes           []string `json:"notes,omitempty"`
}

// Tick is one slot of a phase's timeline.
type Tick struct {
	AtMs         int     `json:"at_ms"`
	Acked        uint64  `json:"acked"`
	Delivered    uint64  `json:"delivered"`
	MaxAckMs     float64 `json:"max_ack_ms"`
	MaxDeliverMs float64 `json:"max_deliver_ms"`
}

// stalls describes the worst slots of a timeline: when, how slow, how much moved.
func stalls(ts []Tick, n int) string {
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(ts[b].MaxDeliverMs, ts[a].MaxDeliverMs) })
	var parts []string
	for _, i := range idx[:min(n, len(idx))] {
		if ts[i].MaxDeliverMs == 0 {
			break
		}
		parts = append(parts, fmt.Sprintf("%.1fs: %s ms (%d delivered)", float64(ts[i].AtMs)/1000, num(ts[i].MaxDeliverMs), ts[i].Delivered))
	}
	return strings.Join(parts, ", ")
}

// Baselines are the raw figures measured in the same run.
type Baselines struct {
	JetStreamAsync *Throughput `json:"jetstream_async_publish,omitempty"`
	// JetStreamPipeline is the same publishing with two durable consumers reading along: the
	// CPU every message costs in natter's design before natter's own work (see jsPipeline).
	JetStreamPipeline *Throughput `json:"jetstream_pipeline,omitempty"`
	JetStreamSync     *RoundTrip  `json:"jetstream_sync_publish,omitempty"`
	WSEchoRTT         *RoundTrip  `json:"ws_echo_round_trip,omitempty"`
	WSEchoPipelined   *Throughput `json:"ws_echo_pipelined,omitempty"`
	WSEchoIdle        *MemResult  `json:"ws_echo_idle,omitempty"`
}

// Figure is one row of the summary: natter's value, its baseline's, and their ratio. Latency
// rows carry three values (p50, p99, p99.9).
type Figure struct {
	Name     string    `json:"name"`
	Unit     string    `json:"unit"`
	Values   []float64 `json:"values"`
	Baseline string    `json:"baseline,omitempty"`
	Base     []float64 `json:"baseline_values,omitempty"`
	Ratios   []float64 `json:"ratios,omitempty"`
}

// TargetCheck is one of the project's performance targets: a benchmark, never a test gate.
type TargetCheck struct {
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Goal   string  `json:"goal"`
	Met    bool    `json:"met"`
	Note   string  `json:"note,omitempty"`
}

// Host describes where the run happened.
type Host struct {
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// Settings are the run's knobs, as used.
type Settings struct {
	Users     int     `json:"users"`
	Devices   int     `json:"devices"`
	Window    int     `json:"window"`
	Rate      float64 `json:"rate,omitempty"`
	MsgSize   int     `json:"msg_size"`
	GroupSize int     `json:"group_size"`
	Groups    int     `json:"groups"`
	IdleConns int     `json:"idle_conns"`
	Duration  string  `json:"duration"`
	Warmup    string  `json:"warmup"`
	// FrameRateLifted: the in-process natter's per-connection frame rate limit was lifted.
	FrameRateLifted bool `json:"frame_rate_limit_lifted"`
}

// Report is a whole run, for people (WriteTable) and for tracking over time (JSON).
type Report struct {
	Tool         string        `json:"tool"`
	Command      string        `json:"command,omitempty"`
	Version      string        `json:"version,omitempty"`
	StartedAt    time.Time     `json:"started_at"`
	Seconds      float64       `json:"seconds"`
	Host         Host          `json:"host"`
	Target       string        `json:"target"`
	Settings     Settings      `json:"settings"`
	Baselines    Baselines     `json:"baselines"`
	Phases       []*LoadResult `json:"phases"`
	GroupSkipped string        `json:"group_skipped,omitempty"`
	Memory       *MemResult    `json:"memory,omitempty"`
	Figures      []Figure      `json:"figures"`
	Targets      []TargetCheck `json:"targets"`
	Notes        []string      `json:"notes,omitempty"`
}

func (r *Report) phase(scenario, mode string) *LoadResult {
	for _, p := range r.Phases {
		if p.Scenario == scenario && p.Mode == mode {
			return p
		}
	}
	return nil
}

func ratio(v, base float64) float64 {
	if base == 0 || math.IsNaN(v) || math.IsNaN(base) {
		return 0
	}
	return v / base
}

func (r *Report) add(name, unit string, v float64, baseline string, base float64) {
	r.Figures = append(r.Figures, Figure{Name: name, Unit: unit, Values: []float64{v}, Baseline: baseline,
		Base: []float64{base}, Ratios: []float64{ratio(v, base)}})
}

func (r *Report) addLatency(name string, l Latency, baseline string, base Latency) {
	f := Figure{Name: name, Unit: "ms p50/p99/p99.9", Values: []float64{l.P50, l.P99, l.P999}}
	if baseline != "" {
		f.Baseline = baseline
		f.Base = []float64{base.P50, base.P99, base.P999}
		f.Ratios = []float64{ratio(l.P50, base.P50), ratio(l.P99, base.P99), ratio(l.P999, base.P999)}
	}
	r.Figures = append(r.Figures, f)
}

// finish derives the figures and target checks from the measurements.
func (r *Report) finish() {
	b := r.Baselines
	js, echo := b.JetStreamAsync, b.WSEchoPipelined
	var floor Latency
	floorName := ""
	if b.WSEchoRTT != nil && b.JetStreamSync != nil {
		floorName = "floor: ws echo RTT + JS sync publish"
		floor = Latency{P50: b.WSEchoRTT.Latency.P50 + b.JetStreamSync.Latency.P50,
			P99: b.WSEchoRTT.Latency.P99 + b.JetStreamSync.Latency.P99, P999: b.WSEchoRTT.Latency.P999 + b.JetStreamSync.Latency.P999}
	}
	jsRate, jsCPU, echoRate, echoCPU, pipeCPU := 0.0, 0.0, 0.0, 0.0, 0.0
	if js != nil {
		jsRate, jsCPU = js.PerSec, js.CPUPer1000Msgs
	}
	if b.JetStreamPipeline != nil {
		pipeCPU = b.JetStreamPipeline.CPUPer1000Msgs
	}
	if echo != nil {
		echoRate, echoCPU = echo.PerSec, echo.CPUPer1000Msgs
	}
	for _, p := range r.Phases {
		label := p.Scenario
		if p.Scenario == ScenarioGroup {
			label = fmt.Sprintf("group(%d)", p.Members)
		}
		if p.Mode == ModePaced {
			label += fmt.Sprintf(" paced %.0f/s", p.TargetRate)
		} else {
			label += " flat-out"
		}
		r.add(label+": accepted msgs/s", "msg/s", p.AckedPerSec, "JS async publish msg/s", jsRate)
		r.add(label+": delivered msgs/s", "msg/s", p.DeliveredMsgsPerSec, "JS async publish msg/s", jsRate)
		r.add(label+": deliveries/s", "frames/s", p.DeliveriesPerSec, "ws echo pipelined msg/s", echoRate)
		for _, s := range p.Stages {
			if strings.HasPrefix(s.Name, "persister") {
				r.add(label+": persisted events/s", "ev/s", s.PerSec, "JS async publish msg/s", jsRate)
			}
		}
		if p.Mode == ModeFlat {
			r.add(label+": sustained msgs/s (min of accepted, delivered, persisted)", "msg/s", sustained(p), "JS async publish msg/s", jsRate)
		}
		r.addLatency(label+": send→ack", p.AckLatency, floorName, floor)
		r.addLatency(label+": send→deliver", p.DeliverLatency, floorName, floor)
		if p.CPUSeconds > 0 {
			what := "CPU s / 1000 msgs"
			if p.CPUIncludesClients {
				what += " (incl. clients)"
			}
			r.add(label+": "+what, "s", p.CPUPer1000Msgs, "JS async publish", jsCPU)
			r.add(label+": "+what, "s", p.CPUPer1000Msgs, "JS publish + 2 consumers", pipeCPU)
			r.add(label+": CPU s / 1000 deliveries", "s", p.CPUPer1000Deliveries, "ws echo pipelined", echoCPU)
		}
	}
	if m := r.Memory; m != nil {
		e := b.WSEchoIdle
		var eh, ebytes, erss float64
		if e != nil {
			eh, ebytes, erss = float64(e.Held), e.BytesPerConn, e.RSSPerConn
		}
		r.add("idle connections held", "conns", float64(m.Held), "ws echo", eh)
		if m.BytesPerConn != 0 {
			r.add("memory per idle connection (heap+stack)", "KiB", m.BytesPerConn/1024, "ws echo", ebytes/1024)
		}
		// RSS deltas are noisy in-process (the runtime returns memory to the OS lazily, and
		// reuses what earlier phases freed): shown when both are positive.
		if m.RSSPerConn > 0 && (erss > 0 || m.Method == "rss") {
			r.add("memory per idle connection (RSS)", "KiB", m.RSSPerConn/1024, "ws echo", max(erss, 0)/1024)
		}
	}

	worst := 0.0
	for _, p := range r.Phases {
		worst = max(worst, p.OtherCores)
	}
	for _, t := range []*Throughput{js, b.JetStreamPipeline, echo} {
		if t != nil {
			worst = max(worst, t.OtherCores)
		}
	}
	if worst > 0.1 {
		r.Notes = append(r.Notes, fmt.Sprintf("other processes kept up to %.2f of %d cores busy during measurements: rerun on a quiet machine before trusting these figures", worst, r.Host.CPUs))
	}

	// Targets.
	if p := r.phase(Scenario1to1, ModeFlat); p != nil && js != nil {
		v := ratio(p.DeliveredMsgsPerSec, js.PerSec)
		r.Targets = append(r.Targets, TargetCheck{Target: "1:1 delivered msgs/s vs raw JetStream async publish",
			Value: v, Goal: "≥ 0.30", Met: v >= 0.30})
	}
	if p := r.phase(Scenario1to1, ModePaced); p != nil {
		t := TargetCheck{Target: "1:1 send→deliver p99 at half the maximum rate (ms)", Value: p.DeliverLatency.P99,
			Goal: "< 10 ms", Met: p.DeliverLatency.P99 < 10 && p.DeliverLatency.Count > 0}
		if flat := r.phase(Scenario1to1, ModeFlat); flat == nil || r.Settings.Rate != 0 {
			t.Note = fmt.Sprintf("paced at %.0f msg/s as asked, not derived from a flat-out phase", p.TargetRate)
		}
		r.Targets = append(r.Targets, t)
	}
	if m := r.Memory; m != nil && b.WSEchoIdle != nil {
		t := TargetCheck{Target: "idle memory per connection vs bare coder/websocket echo", Goal: "≤ 1.5×"}
		switch {
		case m.BytesPerConn != 0 && b.WSEchoIdle.BytesPerConn != 0:
			t.Value = ratio(m.BytesPerConn, b.WSEchoIdle.BytesPerConn)
		case m.RSSPerConn != 0 && b.WSEchoIdle.RSSPerConn != 0:
			t.Value, t.Note = ratio(m.RSSPerConn, b.WSEchoIdle.RSSPerConn), "RSS-based (external natter)"
		}
		t.Met = t.Value > 0 && t.Value <= 1.5
		r.Targets = append(r.Targets, t)
	}
	if p := r.phase(ScenarioGroup, ModeFlat); p != nil {
		t := TargetCheck{Target: "100-member group deliveries/s on this machine", Value: p.DeliveriesPerSec,
			Goal: "≥ 50,000", Met: p.DeliveriesPerSec >= 50_000 && p.Members == 100}
		if p.Members != 100 {
			t.Note = fmt.Sprintf("groups had %d members, not 100", p.Members)
		}
		if r.Host.CPUs != 2 {
			t.Note = strings.TrimSpace(t.Note + fmt.Sprintf(" measured on %d CPUs, the target is for 2", r.Host.CPUs))
		}
		r.Targets = append(r.Targets, t)
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "natter bench — %s, %s/%s, %d CPUs (GOMAXPROCS %d), %s\n", r.Host.GoVersion, r.Host.OS, r.Host.Arch,
		r.Host.CPUs, r.Host.GOMAXPROCS, r.Target)
	if r.Command != "" {
		fmt.Fprintf(w, "command: %s", r.Command)
		if r.Version != "" {
			fmt.Fprintf(w, " (natter %s)", r.Version)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%s\n\n", r.ranHeader())

	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tnatter\tbaseline\t\tratio")
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\n", f.Name, nums(f.Values), f.Unit, f.Baseline, nums(f.Base), ratios(f.Ratios))
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\nraw baselines (same run, same machine):")
	b := r.Baselines
	if b.JetStreamAsync != nil {
		fmt.Fprintf(w, "  %s: %s msg/s with %d publishers × window %d, %d-byte payload; publish→ack %s ms; %.3f CPU s/1000 msgs\n",
			b.JetStreamAsync.What, num(b.JetStreamAsync.PerSec), b.JetStreamAsync.Clients, b.JetStreamAsync.Window,
			b.JetStreamAsync.PayloadBytes, lat(b.JetStreamAsync.Latency), b.JetStreamAsync.CPUPer1000Msgs)
	}
	if t := b.JetStreamPipeline; t != nil {
		fmt.Fprintf(w, "  %s: %s msg/s with %d publishers × window %d; %.3f CPU s/1000 msgs\n",
			t.What, num(t.PerSec), t.Clients, t.Window, t.CPUPer1000Msgs)
	}
	for _, t := range []*Throughput{b.JetStreamAsync, b.JetStreamPipeline, b.WSEchoPipelined} {
		if t != nil && t.OtherCores > 0.1 {
			fmt.Fprintf(w, "  WARNING: other processes kept %.2f cores busy during %q\n", t.OtherCores, t.What)
		}
	}
	if b.JetStreamSync != nil {
		fmt.Fprintf(w, "  %s: %s ms (%s/s)\n", b.JetStreamSync.What, lat(b.JetStreamSync.Latency), num(b.JetStreamSync.PerSec))
	}
	if b.WSEchoRTT != nil {
		fmt.Fprintf(w, "  %s: %s ms (%s/s), %d-byte frames\n", b.WSEchoRTT.What, lat(b.WSEchoRTT.Latency), num(b.WSEchoRTT.PerSec), b.WSEchoRTT.PayloadBytes)
	}
	if b.WSEchoPipelined != nil {
		fmt.Fprintf(w, "  %s: %s msg/s with %d clients × window %d; %.3f CPU s/1000 msgs\n", b.WSEchoPipelined.What,
			num(b.WSEchoPipelined.PerSec), b.WSEchoPipelined.Clients, b.WSEchoPipelined.Window, b.WSEchoPipelined.CPUPer1000Msgs)
	}
	if m := b.WSEchoIdle; m != nil {
		fmt.Fprintf(w, "  coder/websocket echo, idle: %d of %d connections, %.1f KiB heap+stack (%.1f KiB stacks, %.1f goroutines), %.1f KiB RSS each\n",
			m.Held, m.Requested, m.BytesPerConn/1024, m.StackPerConn/1024, m.GoroutinesPerConn, m.RSSPerConn/1024)
	}

	fmt.Fprintln(w, "\nphases:")
	for _, p := range r.Phases {
		fmt.Fprintf(w, "  %s: %d senders, %d conns; sent %d, acked %d, delivered %d (missing %d); errors %v; settled in %.1fs; %d conns held\n",
			p.Name, p.Senders, p.Connections, p.Sent, p.Acked, p.Delivered, p.Missing, p.Errors, p.SettleSeconds, p.ConnectionsHeld)
		if p.OtherCores > 0.1 {
			fmt.Fprintf(w, "    WARNING: other processes kept %.2f cores busy during this phase: its figures are not natter's alone\n", p.OtherCores)
		}
		for _, s := range p.Stages {
			fmt.Fprintf(w, "    natter %s: %s/s, %.3f ms each\n", s.Name, num(s.PerSec), s.AvgMs)
		}
		if s := stalls(p.Timeline, 3); s != "" {
			fmt.Fprintf(w, "    slowest 100 ms slots (worst send→deliver): %s\n", s)
		}
		if p.BacklogAtEnd > 0 {
			fmt.Fprintf(w, "    natter's consumers were %d events behind when sending stopped\n", p.BacklogAtEnd)
		}
		for _, n := range p.Notes {
			fmt.Fprintf(w, "    note: %s\n", n)
		}
	}
	if r.GroupSkipped != "" {
		fmt.Fprintf(w, "  %s\n", r.GroupSkipped)
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(w, "  idle connections to %s: %d of %d held (set up in %.1fs), %s", m.Server, m.Held, m.Requested, m.SetupSeconds, m.Method)
		if m.GoroutinesPerConn > 0 {
			fmt.Fprintf(w, ": %.1f KiB each, of which %.1f KiB stacks (%.1f goroutines)", m.BytesPerConn/1024, m.StackPerConn/1024, m.GoroutinesPerConn)
		}
		fmt.Fprintln(w)
		if m.Error != "" {
			fmt.Fprintf(w, "    note: %s\n", m.Error)
		}
	}

	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets (benchmarks, not test gates):")
		for _, t := range r.Targets {
			mark := "MISSED"
			if t.Met {
				mark = "met"
			}
			note := ""
			if t.Note != "" {
				note = " — " + t.Note
			}
			fmt.Fprintf(w, "  [%s] %s: %s (goal %s)%s\n", mark, t.Target, num(t.Value), t.Goal, note)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// ranHeader describes what ran: the scenarios with a phase or a memory measurement in the
// report, with their modes, and the settings of those alone.
func (r *Report) ranHeader() string {
	s := r.Settings
	var ran, settings []string
	var group *LoadResult
	for _, scenario := range []string{Scenario1to1, ScenarioGroup} {
		var modes []string
		for _, p := range r.Phases {
			if p.Scenario == scenario {
				modes = append(modes, p.Mode)
				if scenario == ScenarioGroup {
					group = p
				}
			}
		}
		if len(modes) > 0 {
			ran = append(ran, fmt.Sprintf("%s (%s)", scenario, strings.Join(modes, ", ")))
		}
	}
	if len(ran) > 0 {
		settings = append(settings, fmt.Sprintf("%d users × %s each, %d-char messages, window %d",
			s.Users, plural(s.Devices, "device"), s.MsgSize, s.Window))
		if group != nil {
			settings = append(settings, fmt.Sprintf("%s of %d members", plural(s.Groups, "group"), group.Members))
		}
		settings = append(settings, fmt.Sprintf("%s measured per phase after %s warm-up", s.Duration, s.Warmup))
	}
	if m := r.Memory; m != nil {
		ran = append(ran, ScenarioMemory)
		settings = append(settings, fmt.Sprintf("%d idle connections", m.Requested))
	}
	if len(ran) == 0 {
		return "no scenario ran"
	}
	return "ran: " + strings.Join(ran, ", ") + "\n" + strings.Join(settings, "; ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func num(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 1000:
		s := fmt.Sprintf("%.0f", v)
		// thousands separators
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var out []byte
		for i := range len(s) {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[i])
		}
		if neg {
			return "-" + string(out)
		}
		return string(out)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func nums(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = num(v)
	}
	return strings.Join(s, " / ")
}

func ratios(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		if v == 0 {
			s[i] = "–"
		} else {
			s[i] = fmt.Sprintf("%.2f×", v)
		}
	}
	return strings.Join(s, " / ")
}

func lat(l Latency) string {
	return fmt.Sprintf("p50 %s / p99 %s / p99.9 %s", num(l.P50), num(l.P99), num(l.P999))
}
