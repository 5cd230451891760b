package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"
)

// childEnv makes a process started by the bench (its own executable) a holder of idle client
// connections instead of whatever it would otherwise do. The clients live in another process so
// that the server's memory is measured alone, and so that client and server do not share one
// process's open-file limit.
const childEnv = "NATTER_BENCH_CHILD"

// MemResult is what K idle connections cost a server.
type MemResult struct {
	Server    string `json:"server"`
	Requested int    `json:"requested"`
	Held      int    `json:"held"`
	// Method says how memory was read: "heap+stack" (live heap plus goroutine stacks of this
	// process after GC: natter in-process, and the echo server) or "rss" (an external natter's
	// resident set, from /proc/<pid>/status).
	Method string `json:"method"`
	// BytesPerConn is the live heap + stack delta per held connection (in-process only).
	BytesPerConn float64 `json:"bytes_per_conn,omitempty"`
	// RSSPerConn is the resident-set delta per held connection (noisier: the runtime returns
	// memory to the OS lazily).
	RSSPerConn float64 `json:"rss_bytes_per_conn,omitempty"`
	// GoroutinesPerConn and StackPerConn split BytesPerConn (in-process only): goroutines are
	// what a connection's stacks cost.
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
	StackPerConn      float64 `json:"stack_bytes_per_conn,omitempty"`
	SetupSeconds      float64 `json:"setup_seconds"`
	Error             string  `json:"error,omitempty"`
}

// idleJob is what the parent tells a child, as one JSON line on its stdin.
type idleJob struct {
	URL        string   `json:"url"`    // ws:// endpoint
	Tokens     []string `json:"tokens"` // connection i uses Tokens[i%len]; none: no token, no device
	DevicePfx  string   `json:"device_prefix"`
	N          int      `json:"n"`
	WaitSynced bool     `json:"wait_synced"` // natter: a connection counts once its synced frame came
	// Centrifugo: the connections speak Centrifugo's protocol (natter bench peers): connection i
	// connects with Tokens[i%len] and subscribes to Channels[i%len], and pings are answered.
	Centrifugo bool     `json:"centrifugo,omitempty"`
	Channels   []string `json:"channels,omitempty"`
}

func (j idleJob) urlFor(i int) string {
	if len(j.Tokens) == 0 || j.Centrifugo {
		return j.URL
	}
	sep := "?"
	if strings.Contains(j.URL, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%stoken=%s&device=%s%d", j.URL, sep, url.QueryEscape(j.Tokens[i%len(j.Tokens)]), j.DevicePfx, i)
}

// RunChildIfAsked turns this process into an idle-connection holder when the bench started it
// for that, and then exits; otherwise it returns at once. Call it first in main (natter bench
// does) and in TestMain of tests that run the memory scenario.
func RunChildIfAsked() {
	if os.Getenv(childEnv) != "idle" {
		return
	}
	if err := runIdleChild(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "natter bench idle client:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runIdleChild reads a job, opens its connections, prints "ready <held> <failed> <first error>",
// holds them until stdin closes, then prints "alive <n>" and closes them.
func runIdleChild(in io.Reader, out io.Writer) error {
	rd := bufio.NewReader(in)
	line, err := rd.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read job: %w", err)
	}
	var job idleJob
	if err := json.Unmarshal(line, &job); err != nil {
		return fmt.Errorf("decode job: %w", err)
	}
	hc := wsHTTPClient()
	conns := make([]*websocket.Conn, job.N)
	done := make([]chan struct{}, job.N)
	var failed atomic.Int64
	var firstErr atomic.Value
	g := errgroup.Group{}
	g.SetLimit(32)
	for i := range job.N {
		g.Go(func() error {
			c, err := dialWS(context.Background(), hc, job.urlFor(i))
			if err == nil && job.WaitSynced {
				err = waitSynced(c)
			}
			if err == nil && job.Centrifugo {
				err = job.cfHandshake(c, i)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				if c != nil {
					_ = c.CloseNow()
				}
				return nil
			}
			// Keep reading (pongs are answered while a read is pending) and drop whatever comes:
			// an idle device may still be told things, such as its contacts' presence.
			conns[i], done[i] = c, make(chan struct{})
			go func() {
				defer close(done[i])
				var buf []byte
				var err error
				for err == nil {
					buf, err = readFrame(context.Background(), c, buf[:0])
					if job.Centrifugo && err == nil {
						cfLines(buf, func(line []byte) {
							if parseCFLine(line).Kind == cfPing {
								_ = c.Write(context.Background(), websocket.MessageText, cfPingFrame)
							}
						})
					}
				}
			}()
			return nil
		})
	}
	_ = g.Wait()
	held := 0
	for _, c := range conns {
		if c != nil {
			held++
		}
	}
	msg, _ := firstErr.Load().(string)
	fmt.Fprintf(out, "ready %d %d %s\n", held, failed.Load(), strings.ReplaceAll(msg, "\n", " "))
	_, _ = io.Copy(io.Discard, rd) // until the parent closes stdin
	alive := 0
	for _, d := range done {
		if d == nil {
			continue
		}
		select {
		case <-d:
		default:
			alive++
		}
	}
	fmt.Fprintf(out, "alive %d\n", alive)
	// No close handshakes: the process exits and the kernel resets every socket (linger 0),
	// which is quicker than thousands of handshakes and leaves no TIME_WAIT behind.
	return nil
}

// cfHandshake connects Centrifugo connection i and subscribes it to its channel.
func (j idleJob) cfHandshake(c *websocket.Conn, i int) error {
	if len(j.Tokens) == 0 || len(j.Channels) == 0 {
		return errors.New("centrifugo idle connections need tokens and channels")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.SetReadLimit(256 << 20)
	_, err := cfHandshake(ctx, c, j.Tokens[i%len(j.Tokens)], "natter-bench-idle", []cfSub{{channel: j.Channels[i%len(j.Channels)]}})
	return err
}

func waitSynced(c *websocket.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var buf []byte
	var err error
	for {
		if buf, err = readFrame(ctx, c, buf); err != nil {
			return err
		}
		if strings.HasPrefix(string(buf), string(prefixSynced)) {
			return nil
		}
	}
}

// measureIdle holds job.N idle connections from a child process and reads what they cost the
// server: this process's live heap + stacks when heap is set, and the RSS of rssPID (0: this
// process; -1: unknown). memProfile, if set, receives a heap profile while they are held.
func measureIdle(ctx context.Context, exe, server string, job idleJob, heap bool, rssPID int, memProfile string) (*MemResult, error) {
	res := &MemResult{Server: server, Requested: job.N, Method: "rss"}
	if heap {
		res.Method = "heap+stack"
	}
	var m0, r0, s0 int64
	var g0 int
	if heap {
		quiesce(ctx) // connections closed just before (an earlier phase's) may still be ending
		m0, s0 = liveBytes()
		g0 = runtime.NumGoroutine()
	}
	if rssPID >= 0 {
		r0, _ = rssBytes(rssPID)
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, exe, "bench")
	cmd.Env = append(os.Environ(), childEnv+"=idle")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start idle clients (%s): %w", exe, err)
	}
	waited := false
	defer func() {
		if !waited {
			_ = stdin.Close()
			_ = cmd.Wait()
		}
	}()
	b, _ := json.Marshal(job)
	if _, err := stdin.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("idle clients: %w", err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		return nil, fmt.Errorf("idle clients ended before they were ready: %v", sc.Err())
	}
	var held, failed int
	if _, err := fmt.Sscanf(sc.Text(), "ready %d %d", &held, &failed); err != nil {
		return nil, fmt.Errorf("idle clients said %q", sc.Text())
	}
	if failed > 0 {
		why := ""
		if parts := strings.SplitN(sc.Text(), " ", 4); len(parts) == 4 {
			why = parts[3]
		}
		res.Error = fmt.Sprintf("%d connections failed: %s", failed, why)
	}
	res.SetupSeconds = time.Since(start).Seconds()
	sleep(ctx, time.Second) // let the server finish setting the sockets up (catch-up, route puts)
	var m1, r1, s1 int64
	var g1 int
	if heap {
		m1, s1 = liveBytes()
		g1 = runtime.NumGoroutine()
	}
	if rssPID >= 0 {
		r1, _ = rssBytes(rssPID)
	}
	if memProfile != "" {
		if err := writeHeapProfile(memProfile); err != nil {
			res.Error = strings.TrimSpace(res.Error + " heap profile: " + err.Error())
		}
	}
	_ = stdin.Close()
	if sc.Scan() {
		var alive int
		if _, err := fmt.Sscanf(sc.Text(), "alive %d", &alive); err == nil {
			held = alive
		}
	}
	waited = true
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("idle clients: %w", err)
	}
	res.Held = held
	if held == 0 {
		return res, errors.New("no idle connection was held")
	}
	if heap {
		res.BytesPerConn = float64(m1-m0) / float64(held)
		res.StackPerConn = float64(s1-s0) / float64(held)
		res.GoroutinesPerConn = float64(g1-g0) / float64(held)
	}
	if rssPID >= 0 {
		res.RSSPerConn = float64(r1-r0) / float64(held)
	}
	return res, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// quiesce waits (at most 10 s) until this process's goroutine count has not changed for half a
// second: sessions of connections closed just before are gone.
func quiesce(ctx context.Context) {
	deadline := time.Now().Add(10 * time.Second)
	last, same := runtime.NumGoroutine(), 0
	for same < 5 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
	}
}
