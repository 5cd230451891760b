package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/childproc"
	"github.com/natter-chat/natter/pkg/promfwd"
	"github.com/natter-chat/natter/services/app"
)

// searchNice is the search process's niceness: it runs on CPU that the delivery path leaves.
const searchNice = 19

// searchChildEnv is set in the search process's environment: its log lines carry
// "process": "search", to tell them from the parent's on the same stderr.
const searchChildEnv = "NATTER_IS_SEARCH_PROCESS" // no flag has this name (envFlags)

// searchApart says whether natter run indexes search in a process of its own (--search-process).
// It applies when search is one of several targets (else it says no, and why is ""); then the
// flag must ask for it, the system must have what childproc needs, and the child must be able to
// reach NATS as a client of its own, else why says which did not hold.
func searchApart(cfg app.Config, wanted bool) (apart bool, why string) {
	switch {
	case !slices.Contains(cfg.Targets, app.TargetSearch) || len(cfg.Targets) == 1:
		return false, ""
	case !wanted:
		return false, "--search-process=false"
	case !childproc.Supported():
		return false, "not supported on this system"
	case cfg.NATSURL == "" && cfg.NATS.TLSCert != "":
		return false, "the embedded NATS server takes TLS clients only, and this process's own connections to it go in-process"
	}
	return true, ""
}

// searchProcess is natter run's search, run as `natter run --target search` at nice 19: its
// index writes then take only CPU that the delivery path leaves, and its garbage is collected
// on a heap of its own (performance.md, twenty-seventh round). It reads CHAT and answers the
// API's queries over NATS like a search process of a split deployment; its metrics are served
// on the parent's /metrics (promfwd).
type searchProcess struct {
	dir   string // holds the child's addr file
	child *childproc.Child
}

func newSearchProcess() (*searchProcess, error) {
	dir, err := os.MkdirTemp("", "natter-search-")
	if err != nil {
		return nil, fmt.Errorf("search process: %w", err)
	}
	return &searchProcess{dir: dir}, nil
}

func (s *searchProcess) addrFile() string { return filepath.Join(s.dir, "addrs.json") }

// metricsURL is the running child's /metrics, "" while none runs.
func (s *searchProcess) metricsURL() string {
	raw, err := os.ReadFile(s.addrFile())
	if err != nil {
		return ""
	}
	var a Addresses
	if json.Unmarshal(raw, &a) != nil {
		return ""
	}
	return a.Metrics
}

// gatherer serves the child's natter_ metrics (but the spare-P gauge, which the parent has too)
// and its CPU time and memory, renamed natter_search_process_*.
func (s *searchProcess) gatherer() prometheus.Gatherer {
	return &promfwd.Gatherer{
		URL: s.metricsURL,
		Rename: func(name string) (string, bool) {
			switch {
			case name == "natter_spare_proc":
				return "", false
			case strings.HasPrefix(name, "natter_"):
				return name, true
			case name == "process_cpu_seconds_total" || name == "process_resident_memory_bytes":
				return "natter_search_" + name, true
			}
			return "", false
		},
		UpName: "natter_search_process_up",
		UpHelp: "1 when natter run's search process (--search-process) answered the last read of its metrics, 0 when not.",
	}
}

// Bounds on how long natter run waits for its search process. Search is not on the delivery
// path and recovers from its consumer's position, but a niced process on busy CPUs can take
// long to start or to stop: natter starts without it once searchReadyWait has passed (it
// answers queries once it is ready), and kills it on a stop that takes searchStopWait.
const (
	searchReadyWait = 10 * time.Second
	searchStopWait  = 20 * time.Second
)

// start runs the child with the parent's own flags (args) and these last, which win: search
// alone, its metrics on a free port, and natsURL, the parent's embedded server ("" with an
// external NATS, whose flags the child shares). It waits until the child is ready, at most
// searchReadyWait and until ctx ends; ready is false when it stopped waiting first. A ctx
// canceled (the start interrupted) ends the wait quietly: the caller stops anyway.
func (s *searchProcess) start(ctx context.Context, args []string, natsURL string, log *zap.Logger) (ready bool, err error) {
	exe, err := os.Executable()
	if err != nil {
		return false, fmt.Errorf("search process: %w", err)
	}
	childArgs := append([]string{"run"}, args...)
	childArgs = append(childArgs, "--target", app.TargetSearch, "--search-process=false",
		"--metrics-addr", "127.0.0.1:0", "--addr-file", s.addrFile())
	if natsURL != "" {
		childArgs = append(childArgs, "--nats-url", natsURL)
	}
	s.child, err = childproc.Start(childproc.Spec{Name: "search", Path: exe, Args: childArgs, Nice: searchNice,
		Env: []string{searchChildEnv + "=1"}, ReadyFile: s.addrFile(), Stderr: os.Stderr}, log.Named("search-process"))
	if err != nil {
		return false, fmt.Errorf("search process: %w", err)
	}
	wait, cancel := context.WithTimeout(ctx, searchReadyWait)
	defer cancel()
	switch err := s.child.WaitReady(wait); {
	case err == nil:
		return true, nil
	case errors.Is(ctx.Err(), context.Canceled):
		return false, nil
	case wait.Err() != nil:
		log.Warn("search process not ready yet: natter starts without waiting for it; search answers once it is",
			zap.Int("pid", s.child.PID()), zap.Error(err))
		return false, nil
	default:
		return false, fmt.Errorf("search process: %w", err)
	}
}

// stop stops the child, if it was started, and removes its directory. A child still running
// after searchStopWait is killed, and the error says so.
func (s *searchProcess) stop() error {
	var err error
	if s.child != nil {
		ctx, cancel := context.WithTimeout(context.Background(), searchStopWait)
		defer cancel()
		err = s.child.Stop(ctx)
	}
	_ = os.RemoveAll(s.dir)
	return err
}

// withoutSearch is targets less search.
func withoutSearch(targets []string) []string {
	return slices.DeleteFunc(slices.Clone(targets), func(t string) bool { return t == app.TargetSearch })
}
