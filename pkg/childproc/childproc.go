// Package childproc runs a helper process for the life of its parent: at a lower CPU priority,
// started again when it exits, stopped when the parent stops, and killed by the kernel if the
// parent dies first. natter run uses it to index search in a process of its own (Linux only:
// the niceness and the parent-death signal are Linux's; elsewhere Start returns
// ErrUnsupported).
package childproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// ErrUnsupported is Start's answer on a system without the parent-death signal.
var ErrUnsupported = errors.New("childproc: not supported on " + runtime.GOOS)

// Supported reports whether Start works on this system.
func Supported() bool { return supported }

// Spec is the process to run.
type Spec struct {
	Name string // for logs
	Path string
	Args []string
	Env  []string // added to this process's environment
	// Nice is added to the child's niceness (0..19): 19 runs it only on CPU that nothing of
	// normal priority wants.
	Nice int
	// ReadyFile is a file the child writes once it is ready; it is removed before every start,
	// and WaitReady waits for the first child to write it.
	ReadyFile string
	// Stderr takes the child's standard error (nil: discarded); its standard output is
	// discarded.
	Stderr io.Writer
}

// Backoff bounds the wait before a child that exited is started again: MinBackoff after the
// first exit, doubling to MaxBackoff, and back to MinBackoff once a child has run StableAfter.
const (
	MinBackoff  = time.Second
	MaxBackoff  = 30 * time.Second
	StableAfter = time.Minute
)

// readyPoll is how often Start looks for the ready file.
const readyPoll = 20 * time.Millisecond

// Child is a running helper process and the goroutine that keeps it running.
type Child struct {
	spec Spec
	log  *zap.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd // nil between an exit and the next start
	stopping bool

	first chan error    // how the first child ended (buffered: nothing need read it)
	wake  chan struct{} // closed by Stop: the backoff sleep ends
	done  chan struct{} // closed when the supervising goroutine has returned
}

// Start starts the child and the goroutine that starts it again whenever it exits, until Stop;
// WaitReady tells when it is ready.
func Start(spec Spec, log *zap.Logger) (*Child, error) {
	if !supported {
		return nil, ErrUnsupported
	}
	if spec.Nice < 0 || spec.Nice > 19 {
		return nil, fmt.Errorf("childproc %s: nice %d not in 0..19", spec.Name, spec.Nice)
	}
	c := &Child{spec: spec, log: log, first: make(chan error, 1), wake: make(chan struct{}), done: make(chan struct{})}
	go c.supervise()
	return c, nil
}

// WaitReady returns once the first child wrote spec.ReadyFile; an error if it exited first (it
// is started again like any child that exits), or one wrapping ctx.Err() when ctx ended first
// (the child runs on: a niced child on busy CPUs may only be slow).
func (c *Child) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		if _, err := os.Stat(c.spec.ReadyFile); err == nil {
			return nil
		}
		select {
		case err := <-c.first:
			return fmt.Errorf("childproc %s: exited before it was ready: %w", c.spec.Name, err)
		case <-ctx.Done():
			return fmt.Errorf("childproc %s: not ready: %w", c.spec.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

// PID is the running child's process id, 0 between an exit and the next start.
func (c *Child) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Stop asks the child to stop (SIGTERM) and waits for it; when ctx ends first it kills it. It
// is not started again.
func (c *Child) Stop(ctx context.Context) error {
	c.mu.Lock()
	if !c.stopping {
		c.stopping = true
		close(c.wake)
		if c.cmd != nil {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	c.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	if c.cmd != nil {
		_ = c.cmd.Process.Kill()
	}
	c.mu.Unlock()
	<-c.done
	return fmt.Errorf("childproc %s: killed: did not stop in time: %w", c.spec.Name, ctx.Err())
}

// supervise starts the child, waits for it, and starts it again after a backoff until Stop.
// How the first child ended goes to c.first.
//
// It holds its OS thread, for two reasons: the kernel sends the parent-death signal when the
// thread that started the child ends, not the process, so that thread must live as long as the
// child; and a child inherits the niceness of the thread that started it, so this thread takes
// the child's niceness first and every child starts with it, before it runs any code. Nothing
// else runs on a locked thread, and Go starts its new threads from another one. The process's
// main thread is not used: its niceness is what ps shows for the whole process.
func (c *Child) supervise() {
	runtime.LockOSThread() // never unlocked but here: the thread ends with this goroutine
	if onMainThread() {
		// While this goroutine holds the main thread, the one started here runs on another.
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			c.superviseLocked()
		}()
		<-locked
		runtime.UnlockOSThread()
		return
	}
	c.superviseLocked()
}

// superviseLocked is supervise on a locked thread other than the main one.
func (c *Child) superviseLocked() {
	defer close(c.done)
	if err := niceThread(c.spec.Nice); err != nil {
		c.log.Warn("helper process keeps normal CPU priority", zap.String("process", c.spec.Name), zap.Error(err))
	}
	backoff := MinBackoff
	reported := false
	report := func(err error) {
		if !reported {
			reported = true
			c.first <- err
		}
	}
	for {
		started := time.Now()
		err := c.run()
		report(err)
		if c.isStopping() {
			return
		}
		if time.Since(started) >= StableAfter {
			backoff = MinBackoff
		}
		c.log.Error("helper process exited; starting it again", zap.String("process", c.spec.Name), zap.Error(err), zap.Duration("in", backoff))
		select {
		case <-c.wake:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}

func (c *Child) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// run starts the child once and waits for it to exit; an error says how it ended.
func (c *Child) run() error {
	if err := os.Remove(c.spec.ReadyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove ready file: %w", err)
	}
	cmd := exec.Command(c.spec.Path, c.spec.Args...)
	cmd.Env = append(os.Environ(), c.spec.Env...)
	cmd.Stderr = c.spec.Stderr
	cmd.SysProcAttr = sysProcAttr()
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return errors.New("stopped before it started")
	}
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("start: %w", err)
	}
	c.cmd = cmd
	c.mu.Unlock()
	c.log.Info("helper process started", zap.String("process", c.spec.Name), zap.Int("pid", cmd.Process.Pid), zap.Int("nice", c.spec.Nice))
	err := cmd.Wait()
	c.mu.Lock()
	c.cmd = nil
	c.mu.Unlock()
	if err == nil {
		return errors.New("exited with status 0")
	}
	return err
}
