package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// proc is a server under test running as a process of its own.
type proc struct {
	name string
	cmd  *exec.Cmd
	dir  string // its temporary directory, removed by stop
	out  *tailBuffer
	done chan struct{}
	err  error // how it ended; read after done
}

// tailBuffer keeps the last 8 KiB written to it: a server's output, for the error message when
// it dies.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if n := len(t.buf); n > 8<<10 {
		t.buf = append(t.buf[:0], t.buf[n-8<<10:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

func startProc(name, dir, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, dir: dir, out: &tailBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a Ctrl-C of the bench is the bench's to pass on
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the server to stop (SIGTERM), kills it after 30 s, and removes its directory.
func (p *proc) stop() error {
	var err error
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			err = fmt.Errorf("%s did not stop within 30s of SIGTERM: killed", p.name)
		}
	}
	return errors.Join(err, os.RemoveAll(p.dir))
}

// freePort is a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startNatterProc runs `natter run` on a data directory of its own, on free ports, and returns
// it with the addresses it bound (from --addr-file). extra is appended to its arguments.
func startNatterProc(ctx context.Context, bin string, extra []string) (*proc, natterAddrs, error) {
	var a natterAddrs
	dir, err := os.MkdirTemp("", "natter-peers-")
	if err != nil {
		return nil, a, err
	}
	addrFile := filepath.Join(dir, "addrs.json")
	args := []string{"run", "--data-dir", filepath.Join(dir, "data"), "--nats-port", "-1",
		"--api-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--addr-file", addrFile, "--log-level", "error",
		// The load signs hundreds of users up and sends flat out from one address: lift the
		// rate limits, and let sign-ups queue for the bounded password hashing.
		"--rate-limits=false", "--hash-wait", "1m"}
	p, err := startProc("natter", dir, bin, append(args, extra...)...)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, a, err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if raw, err := os.ReadFile(addrFile); err == nil && json.Unmarshal(raw, &a) == nil && a.API != "" {
			return p, a, nil
		}
		if p.exited() {
			_ = p.stop()
			return nil, a, fmt.Errorf("natter run ended before it was ready (%v): %s", p.err, p.out)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = p.stop()
			return nil, a, fmt.Errorf("natter run was not ready within 90s: %s", p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// natterAddrs is what `natter run --addr-file` writes.
type natterAddrs struct {
	API       string `json:"api"`
	WebSocket string `json:"websocket"`
	NATS      string `json:"nats"`
	Metrics   string `json:"metrics"`
}

// Centrifugo's configuration for the comparison (v6 format): HMAC-signed connection tokens, one
// namespace "chat" whose channels any connected client may subscribe to and whose subscribers
// may publish, history kept (at least 1,000 per channel, enough for the catch-up scenario) with
// recovery forced on, and the default in-memory engine. Only what differs from the defaults is
// set: those, a write queue that holds a catch-up's recovery reply, and the debug (pprof)
// endpoints so that a run can profile it.
type cfConfig struct {
	Log struct {
		Level string `json:"level"`
	} `json:"log"`
	HTTPServer struct {
		Address string `json:"address"`
		Port    int    `json:"port"`
	} `json:"http_server"`
	Engine struct {
		Type string `json:"type"`
	} `json:"engine"`
	Client struct {
		Token struct {
			HMACSecretKey string `json:"hmac_secret_key"`
		} `json:"token"`
		RecoveryMaxPublicationLimit int `json:"recovery_max_publication_limit"`
		QueueMaxSize                int `json:"queue_max_size"`
	} `json:"client"`
	Channel struct {
		Namespaces []cfNamespace `json:"namespaces"`
	} `json:"channel"`
	Debug struct {
		Enabled bool `json:"enabled"`
	} `json:"debug"`
}

type cfNamespace struct {
	Name                      string `json:"name"`
	AllowSubscribeForClient   bool   `json:"allow_subscribe_for_client"`
	AllowPublishForSubscriber bool   `json:"allow_publish_for_subscriber"`
	HistorySize               int    `json:"history_size"`
	HistoryTTL                string `json:"history_ttl"`
	ForceRecovery             bool   `json:"force_recovery"`
}

// cfNS is the namespace of every channel the bench uses.
const cfNS = "chat"

func newCFConfig(port int, secret string, history int) cfConfig {
	var c cfConfig
	c.Log.Level = "error"
	c.HTTPServer.Address, c.HTTPServer.Port = "127.0.0.1", port
	c.Engine.Type = "memory"
	c.Client.Token.HMACSecretKey = secret
	c.Client.RecoveryMaxPublicationLimit = history
	// A recovering subscribe's reply carries every missed publication in one message, and it
	// goes through the connection's write queue: with the default limit (1 MiB) a catch-up of
	// 10,000 messages is closed as "slow" (3008) about as often as not.
	c.Client.QueueMaxSize = max(1<<20, 512*history)
	c.Channel.Namespaces = []cfNamespace{{Name: cfNS, AllowSubscribeForClient: true, AllowPublishForSubscriber: true,
		HistorySize: history, HistoryTTL: "600s", ForceRecovery: true}}
	c.Debug.Enabled = true
	return c
}

// startCentrifugoProc runs Centrifugo with newCFConfig on a free port; it returns the process,
// the base URL (http://127.0.0.1:port) and the token secret.
func startCentrifugoProc(ctx context.Context, bin string, history int, log *zap.Logger) (*proc, string, []byte, error) {
	dir, err := os.MkdirTemp("", "centrifugo-peers-")
	if err != nil {
		return nil, "", nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	key := hex.EncodeToString(secret)
	for try := 0; ; try++ { // the free port may be taken between asking and binding: try again
		port, err := freePort()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, "", nil, err
		}
		raw, _ := json.MarshalIndent(newCFConfig(port, key, history), "", "  ")
		if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, "", nil, err
		}
		p, err := startProc("centrifugo", dir, bin, "--config", "config.json")
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, "", nil, err
		}
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		err = waitHTTP(ctx, base+"/debug/pprof/", p, 30*time.Second)
		if err == nil {
			return p, base, []byte(key), nil
		}
		if !p.exited() || try == 2 {
			_ = p.stop()
			return nil, "", nil, err
		}
		log.Warn("centrifugo did not start; trying another port", zap.Error(err)) // the directory is reused
	}
}

// waitHTTP waits until url answers 200, or p ends, or the timeout passes.
func waitHTTP(ctx context.Context, url string, p *proc, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if resp, err := hc.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("%s ended before it was ready (%v): %s", p.name, p.err, p.out)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not answer %s within %s: %s", p.name, url, timeout, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
