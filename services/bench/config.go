package bench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// Scenarios a run can include.
const (
	Scenario1to1   = "1to1"   // pairs of users in direct conversations
	ScenarioGroup  = "group"  // groups of GroupSize members, everyone sending
	ScenarioMemory = "memory" // IdleConns idle connections, natter against a bare echo server
)

// AllScenarios is the default.
var AllScenarios = []string{Scenario1to1, ScenarioGroup, ScenarioMemory}

// Load modes.
const (
	ModeFlat  = "flat"  // every sender keeps Window sends outstanding: the maximum rate
	ModePaced = "paced" // senders pace themselves to Rate messages/s in total: latency at a load
)

// Config is one bench run.
type Config struct {
	// APIURL and WSURL name an external natter (its HTTP API, and its WebSocket endpoint; an
	// empty WSURL is asked of the API's discovery). Empty APIURL starts natter in-process.
	APIURL string
	WSURL  string
	// PID is the external natter's process id, for its CPU time and RSS; 0 leaves them unknown.
	PID int
	// MetricsURL is the external natter's Prometheus endpoint, for its stage timings (optional).
	MetricsURL string
	// NATSURL is the external natter's NATS, to see its consumers catch up between phases
	// (optional; without it a phase may start while the previous one's backlog drains).
	NATSURL string

	Scenarios []string
	Modes     []string

	Users   int // simulated users; each 1:1 pair shares one conversation
	Devices int // connections per user; device 0 of each user sends
	// Window is the sends each sender keeps outstanding in flat-out mode (pipelined by
	// client_msg_id); also the window of the raw baselines' publishers and echo clients.
	Window int
	// Rate is the paced mode's total messages/s; 0 uses half of the flat-out rate just measured.
	Rate      float64
	MsgSize   int // characters of text per message
	GroupSize int // members per group (at most Users)
	Groups    int // groups in the group scenario
	IdleConns int // idle connections held in the memory scenario

	Duration time.Duration // measured time of each phase
	Warmup   time.Duration // unmeasured time before each phase's measurement
	// Settle bounds the wait after a phase for outstanding acks, deliveries and consumers.
	Settle time.Duration

	// CPUProfile, when set, receives a CPU profile of natter's load phases; bench client
	// goroutines carry the pprof label bench=client so they can be told apart
	// (go tool pprof -tagignore bench=client shows natter alone).
	CPUProfile string
	// Trace, when set, receives a runtime execution trace of natter's load phases (large: keep
	// --duration short). go tool trace -pprof=sync|net|syscall|sched turns it into profiles of
	// where goroutines waited.
	Trace string
	// MemProfile, when set, receives a heap profile taken while the idle connections are held.
	MemProfile string

	// Command and Version are recorded in the report: the command line that produced it and
	// the natter build it ran.
	Command string
	Version string
	Log     *zap.Logger
	// Progress receives one line per phase as the run goes; nil is silent.
	Progress io.Writer
	// SelfExe is the executable started for the idle-connection clients (see RunChildIfAsked);
	// empty: this process's own executable.
	SelfExe string
}

// DefaultConfig is `natter bench` with no flags.
func DefaultConfig() Config {
	return Config{
		Scenarios: AllScenarios,
		Modes:     []string{ModeFlat, ModePaced},
		Users:     200,
		Devices:   1,
		Window:    8,
		MsgSize:   100,
		GroupSize: 100,
		Groups:    1,
		IdleConns: 8000,
		Duration:  5 * time.Second,
		Warmup:    time.Second,
		Settle:    60 * time.Second,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	for _, s := range c.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			return fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(AllScenarios, ", "))
		}
	}
	for _, m := range c.Modes {
		if m != ModeFlat && m != ModePaced {
			return fmt.Errorf("unknown mode %q (known: %s, %s)", m, ModeFlat, ModePaced)
		}
	}
	switch {
	case len(c.Scenarios) == 0:
		return errors.New("no scenario")
	case len(c.Modes) == 0:
		return errors.New("no mode")
	case c.Users < 2:
		return errors.New("users must be at least 2")
	case c.Devices < 1 || c.Devices > 16:
		return errors.New("devices must be 1..16")
	case c.Window < 1 || c.Window > 1024:
		return errors.New("window must be 1..1024")
	case c.Rate < 0:
		return errors.New("rate must not be negative")
	case c.MsgSize < 1 || c.MsgSize > protocol.MaxTextRunes:
		return fmt.Errorf("message size must be 1..%d", protocol.MaxTextRunes)
	case c.GroupSize < 2 || c.GroupSize > 100:
		return errors.New("group size must be 2..100")
	case c.Groups < 1:
		return errors.New("groups must be at least 1")
	case c.IdleConns < 1:
		return errors.New("idle connections must be at least 1")
	case c.Duration <= 0 || c.Warmup < 0 || c.Settle <= 0:
		return errors.New("duration and settle must be positive, warmup not negative")
	case c.APIURL == "" && c.PID != 0:
		return errors.New("--pid names an external natter: give --url too")
	}
	return nil
}

func (c Config) has(scenario string) bool { return slices.Contains(c.Scenarios, scenario) }
func (c Config) mode(m string) bool       { return slices.Contains(c.Modes, m) }
