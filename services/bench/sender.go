package bench

import (
	"context"
	mrand "math/rand/v2"
	"sync"
	"time"
)

// pipe is what a load connection's sender and reader share: the window of outstanding sends and
// the end of the connection. client (natter bench) and peerConn (natter bench peers) embed it.
type pipe struct {
	done chan struct{} // closed when the reader ends

	mu     sync.Mutex    // guards window, and the embedding connection's per-phase fields
	window chan struct{} // one token per outstanding send
}

func newPipe() pipe { return pipe{done: make(chan struct{})} }

// release returns one send's window token; mu is held.
func (p *pipe) release() {
	if p.window == nil {
		return
	}
	select {
	case <-p.window:
	default:
	}
}

// giveBack returns a window token taken for a send that did not happen.
func (p *pipe) giveBack() {
	p.mu.Lock()
	p.release()
	p.mu.Unlock()
}

// outstanding is how many sends await their ack or error.
func (p *pipe) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.window == nil {
		return 0
	}
	return len(p.window)
}

func (p *pipe) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// sender is a load connection that sends under its pipe's window.
type sender interface {
	prepare(conv, text string)
	send(ctx context.Context, phase uint32, st *clientStats) error
	index() int
	shared() *pipe
}

// startSenders gives each sender its conversation and a fresh window and starts it sending
// phase id in mode until stop: flat out with window sends outstanding, or paced at rate msgs/s
// in total (open loop, each sender offset at random within its interval).
func startSenders[S interface {
	sender
	comparable
}](ctx context.Context, senders map[S]string, mode string, rate float64, window int, text string,
	id uint32, stats []*clientStats, stop <-chan struct{}, wg *sync.WaitGroup) {
	interval := time.Duration(0)
	if mode == ModePaced {
		interval = time.Duration(float64(len(senders)) / rate * float64(time.Second))
		window = 1024
	}
	for s, conv := range senders {
		s.prepare(conv, text)
		win := make(chan struct{}, window)
		p := s.shared()
		p.mu.Lock()
		p.window = win
		p.mu.Unlock()
		st := stats[s.index()]
		if mode == ModePaced {
			offset := time.Duration(mrand.Int64N(int64(interval) + 1))
			goClient(wg, func() { sendPaced(ctx, s, id, st, win, stop, interval, offset) })
		} else {
			goClient(wg, func() { sendFlat(ctx, s, id, st, win, stop) })
		}
	}
}

// sendFlat keeps s's window full until stop.
func sendFlat(ctx context.Context, s sender, phase uint32, st *clientStats, window chan struct{}, stop <-chan struct{}) {
	done := s.shared().done
	for {
		select {
		case window <- struct{}{}:
		case <-stop:
			return
		case <-done:
			return
		}
		select {
		case <-stop:
			s.shared().giveBack()
			return
		default:
		}
		if s.send(ctx, phase, st) != nil {
			return
		}
	}
}

// sendPaced sends one message every interval (open loop: it does not wait for acks), starting
// after offset, until stop. A send that finds the window full is skipped and counted late.
func sendPaced(ctx context.Context, s sender, phase uint32, st *clientStats, window chan struct{}, stop <-chan struct{},
	interval, offset time.Duration) {
	done := s.shared().done
	next := time.Now().Add(offset)
	t := time.NewTimer(offset)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-stop:
			return
		case <-done:
			return
		}
		select {
		case window <- struct{}{}:
			if s.send(ctx, phase, st) != nil {
				return
			}
		default:
			st.late.Add(1)
		}
		next = next.Add(interval)
		now := time.Now()
		if d := now.Sub(next); d > time.Second { // far behind: do not burst to catch up
			next = now
		}
		t.Reset(max(0, next.Sub(now)))
	}
}
