package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PeerSettings are a peers run's knobs, as used.
type PeerSettings struct {
	Pairs     int      `json:"pairs"`
	Scenarios []string `json:"scenarios"`
	Users     int      `json:"users"`
	Window    int      `json:"window"`
	Rate      float64  `json:"rate"`
	MsgSize   int      `json:"msg_size"`
	GroupSize int      `json:"group_size"`
	IdleConns int      `json:"idle_conns"`
	CatchUp   int      `json:"catch_up"`
	Duration  string   `json:"duration"`
	Warmup    string   `json:"warmup"`
}

// Spread is a figure over rounds: its median and range. N = 0: never measured.
type Spread struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// spreadOf summarises values; NaN means "not measured in that round" and is left out.
func spreadOf(vs []float64) Spread {
	var ok []float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			ok = append(ok, v)
		}
	}
	if len(ok) == 0 {
		return Spread{}
	}
	slices.Sort(ok)
	s := Spread{N: len(ok), Min: ok[0], Max: ok[len(ok)-1]}
	if m := len(ok) / 2; len(ok)%2 == 1 {
		s.Median = ok[m]
	} else {
		s.Median = (ok[m-1] + ok[m]) / 2
	}
	return s
}

// peerRatio is natter's median over Centrifugo's; NaN when either is unknown or Centrifugo's is 0.
func peerRatio(natter, centrifugo Spread) float64 {
	if natter.N == 0 || centrifugo.N == 0 || centrifugo.Median == 0 {
		return math.NaN()
	}
	return natter.Median / centrifugo.Median
}

// PeerFigure is one row of the comparison.
type PeerFigure struct {
	Name       string `json:"name"`
	Unit       string `json:"unit"`
	Natter     Spread `json:"natter"`
	Centrifugo Spread `json:"centrifugo"`
	// Ratio is natter's median / Centrifugo's; absent when either is unknown.
	Ratio *float64 `json:"ratio,omitempty"`
	// LowerIsBetter says which way the ratio should move.
	LowerIsBetter bool `json:"lower_is_better"`
	// Variants are the natter variants' figures (PeersReport.Variants, in that order).
	Variants []VariantFigure `json:"variants,omitempty"`
}

// VariantFigure is a natter variant's figure over its rounds, and its median over Centrifugo's.
type VariantFigure struct {
	Name   string   `json:"name"`
	Spread Spread   `json:"spread"`
	Ratio  *float64 `json:"ratio,omitempty"`
}

// ratioOrNil is peerRatio, nil when unknown.
func ratioOrNil(s, centrifugo Spread) *float64 {
	q := peerRatio(s, centrifugo)
	if math.IsNaN(q) {
		return nil
	}
	return &q
}

// PeersReport is a whole peers run.
type PeersReport struct {
	Tool       string       `json:"tool"`
	Command    string       `json:"command,omitempty"`
	Version    string       `json:"version,omitempty"`    // natter's
	Centrifugo string       `json:"centrifugo,omitempty"` // `centrifugo version`
	StartedAt  time.Time    `json:"started_at"`
	Seconds    float64      `json:"seconds"`
	Host       Host         `json:"host"`
	Settings   PeerSettings `json:"settings"`
	// Variants are the natter variants that ran beside natter (PeersConfig.Variants).
	Variants []NatterVariant `json:"variants,omitempty"`
	// LoadAvgStart and LoadAvgEnd are /proc/loadavg when the run started and ended.
	LoadAvgStart string       `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string       `json:"loadavg_end,omitempty"`
	Rounds       []*PeerRound `json:"rounds"`
	Figures      []PeerFigure `json:"figures"`
	// Busy is the cores other processes (not the bench, not the server under test) kept busy
	// during the measured windows, per server: a noisy machine shows here.
	Busy  map[string]Spread `json:"other_cores"`
	Notes []string          `json:"notes,omitempty"`
}

// peerFigureDefs are the rows of the comparison, in order: the table.
var peerFigureDefs = []struct {
	name, unit string
	lower      bool
	get        func(r *PeerRound) float64 // NaN: not measured
}{
	{"1:1 flat-out: server CPU s / 1000 delivered msgs", "s", true, func(r *PeerRound) float64 {
		return cpuPerDelivered(r.phase(Scenario1to1, ModeFlat))
	}},
	{"1:1 flat-out: server read+write calls / delivered msg", "calls", true, func(r *PeerRound) float64 {
		return callsPerDelivered(r.phase(Scenario1to1, ModeFlat))
	}},
	{"1:1 flat-out: delivered msgs/s", "msg/s", false, func(r *PeerRound) float64 {
		return phaseValue(r.phase(Scenario1to1, ModeFlat), func(p *LoadResult) float64 { return p.DeliveredMsgsPerSec })
	}},
	{"1:1 flat-out: send→deliver p50", "ms", true, func(r *PeerRound) float64 {
		return latencyValue(r.phase(Scenario1to1, ModeFlat), func(l Latency) float64 { return l.P50 })
	}},
	{"1:1 flat-out: send→deliver p99", "ms", true, func(r *PeerRound) float64 {
		return latencyValue(r.phase(Scenario1to1, ModeFlat), func(l Latency) float64 { return l.P99 })
	}},
	{"1:1 paced: delivered msgs/s", "msg/s", false, func(r *PeerRound) float64 {
		return phaseValue(r.phase(Scenario1to1, ModePaced), func(p *LoadResult) float64 { return p.DeliveredMsgsPerSec })
	}},
	{"1:1 paced: send→deliver p50", "ms", true, func(r *PeerRound) float64 {
		return latencyValue(r.phase(Scenario1to1, ModePaced), func(l Latency) float64 { return l.P50 })
	}},
	{"1:1 paced: send→deliver p99", "ms", true, func(r *PeerRound) float64 {
		return latencyValue(r.phase(Scenario1to1, ModePaced), func(l Latency) float64 { return l.P99 })
	}},
	{"1:1 paced: send→deliver p99.9", "ms", true, func(r *PeerRound) float64 {
		return latencyValue(r.phase(Scenario1to1, ModePaced), func(l Latency) float64 { return l.P999 })
	}},
	{"1:1 paced: server CPU s / 1000 delivered msgs", "s", true, func(r *PeerRound) float64 {
		return cpuPerDelivered(r.phase(Scenario1to1, ModePaced))
	}},
	{"1:1 paced: server read+write calls / delivered msg", "calls", true, func(r *PeerRound) float64 {
		return callsPerDelivered(r.phase(Scenario1to1, ModePaced))
	}},
	{"group flat-out: server CPU s / 1000 deliveries", "s", true, func(r *PeerRound) float64 {
		return phaseValue(r.phase(ScenarioGroup, ModeFlat), func(p *LoadResult) float64 {
			if p.CPUSeconds <= 0 || p.DeliveriesPerSec <= 0 {
				return math.NaN()
			}
			return p.CPUPer1000Deliveries
		})
	}},
	{"group flat-out: deliveries/s", "frames/s", false, func(r *PeerRound) float64 {
		return phaseValue(r.phase(ScenarioGroup, ModeFlat), func(p *LoadResult) float64 { return p.DeliveriesPerSec })
	}},
	{"idle: server RSS per connection", "KiB", true, func(r *PeerRound) float64 {
		if r.Idle == nil || r.Idle.Held == 0 || r.Idle.RSSPerConn <= 0 {
			return math.NaN()
		}
		return r.Idle.RSSPerConn / 1024
	}},
	{"catch-up: time to receive all missed messages", "s", true, func(r *PeerRound) float64 {
		if r.CatchUp == nil || r.CatchUp.Received != r.CatchUp.Messages {
			return math.NaN()
		}
		return r.CatchUp.Seconds
	}},
}

func (r *PeerRound) phase(scenario, mode string) *LoadResult {
	for _, p := range r.Phases {
		if p.Scenario == scenario && p.Mode == mode {
			return p
		}
	}
	return nil
}

func phaseValue(p *LoadResult, f func(*LoadResult) float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return f(p)
}

func latencyValue(p *LoadResult, f func(Latency) float64) float64 {
	if p == nil || p.DeliverLatency.Count == 0 {
		return math.NaN()
	}
	return f(p.DeliverLatency)
}

// cpuPerDelivered is the server's CPU seconds per 1000 messages delivered to the other member.
func cpuPerDelivered(p *LoadResult) float64 {
	if p == nil || p.CPUSeconds <= 0 || p.DeliveredMsgsPerSec <= 0 {
		return math.NaN()
	}
	return p.CPUSeconds / (p.DeliveredMsgsPerSec * p.Seconds) * 1000
}

// callsPerDelivered is the server's read and write calls per message delivered to the other
// member, over the span its CPU is counted.
func callsPerDelivered(p *LoadResult) float64 {
	if p == nil || p.Calls == nil || p.DeliveredMsgsPerSec <= 0 {
		return math.NaN()
	}
	return float64(p.Calls.Reads+p.Calls.Writes) / (p.DeliveredMsgsPerSec * p.Seconds)
}

// finish derives the figures, the busy-ness and the notes from the rounds.
func (r *PeersReport) finish() {
	r.Figures = r.Figures[:0]
	for _, d := range peerFigureDefs {
		values := map[string][]float64{} // by server
		for _, round := range r.Rounds {
			values[round.Server] = append(values[round.Server], d.get(round))
		}
		f := PeerFigure{Name: d.name, Unit: d.unit, Natter: spreadOf(values[ServerNatter]), Centrifugo: spreadOf(values[ServerCentrifugo]),
			LowerIsBetter: d.lower}
		f.Ratio = ratioOrNil(f.Natter, f.Centrifugo)
		measured := f.Natter.N > 0 || f.Centrifugo.N > 0
		for _, v := range r.Variants {
			s := spreadOf(values[v.server()])
			f.Variants = append(f.Variants, VariantFigure{Name: v.Name, Spread: s, Ratio: ratioOrNil(s, f.Centrifugo)})
			measured = measured || s.N > 0
		}
		if measured {
			r.Figures = append(r.Figures, f)
		}
	}
	busy := map[string][]float64{}
	r.Notes = r.Notes[:0]
	for _, round := range r.Rounds {
		label := fmt.Sprintf("%s round %d", round.Server, round.Round)
		if round.Error != "" {
			r.Notes = append(r.Notes, label+": "+round.Error)
		}
		for _, p := range round.Phases {
			if p.OtherCores >= 0 {
				busy[round.Server] = append(busy[round.Server], p.OtherCores)
			}
			for _, n := range p.Notes {
				r.Notes = append(r.Notes, label+", "+p.Name+": "+n)
			}
			var errs []string
			for k, v := range p.Errors {
				errs = append(errs, fmt.Sprintf("%d × %s", v, k))
			}
			if len(errs) > 0 {
				slices.Sort(errs)
				r.Notes = append(r.Notes, label+", "+p.Name+": refused sends: "+strings.Join(errs, ", "))
			}
			if p.Missing > 0 {
				r.Notes = append(r.Notes, fmt.Sprintf("%s, %s: %d deliveries missing", label, p.Name, p.Missing))
			}
		}
		if c := round.CatchUp; c != nil {
			if c.OtherCores >= 0 {
				busy[round.Server] = append(busy[round.Server], c.OtherCores)
			}
			if c.Note != "" {
				r.Notes = append(r.Notes, label+", catch-up: "+c.Note)
			}
		}
		if m := round.Idle; m != nil {
			if m.Error != "" {
				r.Notes = append(r.Notes, label+", idle: "+m.Error)
			}
			if m.Held < m.Requested {
				r.Notes = append(r.Notes, fmt.Sprintf("%s, idle: %d of %d connections held", label, m.Held, m.Requested))
			}
		}
	}
	r.Busy = map[string]Spread{}
	for s, v := range busy {
		r.Busy[s] = spreadOf(v)
	}
	var every []float64
	for _, v := range busy {
		every = append(every, v...)
	}
	if all := spreadOf(every); all.N > 0 && all.Max > 0.1 {
		r.Notes = append(r.Notes, fmt.Sprintf("other processes kept up to %.2f of %d cores busy during measurements (median %.2f): the machine was not quiet",
			all.Max, r.Host.CPUs, all.Median))
	}
}

// WriteJSON writes the report as indented JSON.
func (r *PeersReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// spreadCell is "median (min–max)" or "–".
func spreadCell(s Spread) string {
	switch {
	case s.N == 0:
		return "–"
	case s.N == 1 || s.Min == s.Max:
		return peerNum(s.Median)
	default:
		return fmt.Sprintf("%s (%s–%s)", peerNum(s.Median), peerNum(s.Min), peerNum(s.Max))
	}
}

// peerNum is num with three significant digits below 1 (CPU seconds per 1000 messages are
// often a few thousandths).
func peerNum(v float64) string {
	if v != 0 && math.Abs(v) < 1 {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return num(v)
}

// WriteTable writes the comparison as a Markdown table, with what ran and how busy the machine
// was, then each round's own figures.
func (r *PeersReport) WriteTable(w io.Writer) error {
	s := r.Settings
	fmt.Fprintf(w, "%s — natter %s against %s; %s %s/%s, %d CPUs (GOMAXPROCS %d)\n", r.Tool, r.Version, r.Centrifugo,
		r.Host.GoVersion, r.Host.OS, r.Host.Arch, r.Host.CPUs, r.Host.GOMAXPROCS)
	if r.Command != "" {
		fmt.Fprintf(w, "command: %s\n", r.Command)
	}
	fmt.Fprintf(w, "%d round pairs, each server fresh per round; %d users in pairs, window %d, paced %.0f msgs/s, %d-char messages, group of %d, %d idle connections, catch-up of %d; %s measured per phase after %s warm-up\n",
		s.Pairs, s.Users, s.Window, s.Rate, s.MsgSize, s.GroupSize, s.IdleConns, s.CatchUp, s.Duration, s.Warmup)
	for _, v := range r.Variants {
		fmt.Fprintf(w, "natter variant %s: natter run %s\n", v.Name, strings.Join(v.Args, " "))
	}
	busy := "natter rounds " + spreadCell(r.Busy[ServerNatter])
	for _, v := range r.Variants {
		busy += fmt.Sprintf(", %s rounds %s", v.server(), spreadCell(r.Busy[v.server()]))
	}
	fmt.Fprintf(w, "machine: load average %s at the start, %s at the end; other processes kept busy during measurements (cores, median (min–max)): %s, Centrifugo rounds %s\n\n",
		orDash(r.LoadAvgStart), orDash(r.LoadAvgEnd), busy, spreadCell(r.Busy[ServerCentrifugo]))

	// Columns: natter, each variant, Centrifugo, then the ratios in the same order.
	head, ratios := "| figure | natter", " natter / Centrifugo |"
	for _, v := range r.Variants {
		head += " | " + v.server()
		ratios += " " + v.server() + " / Centrifugo |"
	}
	head += " | Centrifugo |" + ratios
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, "|---"+strings.Repeat("|---", 3+2*len(r.Variants))+"|")
	ratioCell := func(q *float64) string {
		if q == nil {
			return "–"
		}
		return fmt.Sprintf("%.2f×", *q)
	}
	for _, f := range r.Figures {
		row, qs := fmt.Sprintf("| %s (%s) | %s", f.Name, f.Unit, spreadCell(f.Natter)), " "+ratioCell(f.Ratio)+" |"
		for _, v := range f.Variants {
			row += " | " + spreadCell(v.Spread)
			qs += " " + ratioCell(v.Ratio) + " |"
		}
		fmt.Fprintln(w, row+" | "+spreadCell(f.Centrifugo)+" |"+qs)
	}
	fmt.Fprintln(w, "\nmedian (min–max) over rounds; CPU is the server process's and its descendants' (/proc/<pid>/stat), the load generator's is not counted")

	fmt.Fprintln(w, "\nrounds:")
	for _, round := range r.Rounds {
		fmt.Fprintf(w, "  %s round %d (%.0fs):", round.Server, round.Round, round.Seconds)
		for _, p := range round.Phases {
			fmt.Fprintf(w, " %s: %s delivered msgs/s, %s deliveries/s, CPU %.2fs, p99 %s ms, other cores %.2f;", p.Name,
				num(p.DeliveredMsgsPerSec), num(p.DeliveriesPerSec), p.CPUSeconds, num(p.DeliverLatency.P99), p.OtherCores)
		}
		if m := round.Idle; m != nil {
			fmt.Fprintf(w, " idle: %d held, %s KiB RSS each;", m.Held, num(m.RSSPerConn/1024))
		}
		if c := round.CatchUp; c != nil {
			fmt.Fprintf(w, " catch-up: %d of %d in %.2fs;", c.Received, c.Messages, c.Seconds)
		}
		if round.Error != "" {
			fmt.Fprintf(w, " error: %s", round.Error)
		}
		fmt.Fprintln(w)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
