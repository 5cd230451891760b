package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

// TestWritesGatherWhatComesWithinTheInterval: while frames keep coming to a socket, it is written
// at most once per WriteInterval, so a burst reaches each socket in a few writes, every frame
// of it in order.
func TestWritesGatherWhatComesWithinTheInterval(t *testing.T) {
	const interval, burst = time.Second, 30
	s := apptest.Start(t, func(c *app.Config) {
		c.Gateway.WriteInterval = interval
		c.MetricsAddr = "127.0.0.1:0"
	})
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a, b := dial(s, alice, "a", nil), dial(s, bob, "b", nil)

	frames0, writes0 := s.Metric("natter_gateway_frames_out_total"), s.Metric("natter_gateway_socket_writes_total")
	start := time.Now()
	for i := range burst { // within the socket's publish window: nothing waits for an ack
		a.Send(send(conv, fmt.Sprintf("m%d", i), fmt.Sprintf("text %d", i)))
	}
	var last uint64
	for i := range burst {
		f := b.NextOf(protocol.TypeMessage, wait)
		if want := fmt.Sprintf("text %d", i); f.Text != want || f.Seq <= last {
			t.Fatalf("bob's message %d: %+v, want %q after seq %d", i, f, want, last)
		}
		last = f.Seq
	}
	for range burst {
		a.NextOf(protocol.TypeAck, wait)
		a.NextOf(protocol.TypeMessage, wait)
	}
	elapsed := time.Since(start)
	frames := s.Metric("natter_gateway_frames_out_total") - frames0
	writes := s.Metric("natter_gateway_socket_writes_total") - writes0
	// Each of the two sockets is written once at once, then at most once per interval.
	bound := 2 * (1 + float64(elapsed/interval) + 1)
	if frames < 3*burst || writes > bound {
		t.Fatalf("%v frames in %v writes over %v, want %d frames in at most %v writes", frames, writes, elapsed, 3*burst, bound)
	}
	t.Logf("%v frames in %v writes over %v", frames, writes, elapsed)
}

// TestCatchUpIsWrittenInBatches: a device that catches up gets its history in a few writes,
// not one per frame, every frame in order; with frames=lines in a few messages too.
func TestCatchUpIsWrittenInBatches(t *testing.T) {
	const n = 300
	s := apptest.Start(t, func(c *app.Config) {
		c.MetricsAddr = "127.0.0.1:0"
		c.Gateway.FramesPerSecond, c.Gateway.Burst = 1e6, 1e6 // alice's 300 sends are not rate-limited
	})
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := dial(s, alice, "a", nil)
	var last uint64
	for i := 0; i < n; i += 16 { // 16 at a time: within the socket's publish window
		for j := i; j < min(i+16, n); j++ {
			a.Send(send(conv, fmt.Sprintf("m%d", j), fmt.Sprintf("text %d", j)))
		}
		for j := i; j < min(i+16, n); j++ {
			last = max(last, a.NextOf(protocol.TypeAck, wait).Seq)
		}
	}
	for range n {
		a.NextOf(protocol.TypeMessage, wait) // alice's socket is quiet from here on
	}
	s.WaitPersisted(last)

	frames0, writes0 := s.Metric("natter_gateway_frames_out_total"), s.Metric("natter_gateway_socket_writes_total")
	zero := uint64(0)
	b := apptest.Dial(t, apptest.WSURLFor(s.WSURL, bob.Token, "b", &zero))
	b.NextOf(protocol.TypeWelcome, wait)
	for i := range n {
		if f := b.NextOf(protocol.TypeMessage, wait); f.Text != fmt.Sprintf("text %d", i) {
			t.Fatalf("catch-up frame %d: %+v", i, f)
		}
	}
	b.NextOf(protocol.TypeSynced, wait)
	frames := s.Metric("natter_gateway_frames_out_total") - frames0
	writes := s.Metric("natter_gateway_socket_writes_total") - writes0
	// The welcome, the synced, the history 64 frames to a write (catchUpBatch), and two to spare for
	// whatever else the gateway writes meanwhile (one frame to a write would be over 300).
	if bound := float64(2 + (n+63)/64 + 2); frames < n+2 || writes > bound {
		t.Fatalf("%v frames in %v writes, want %d frames in at most %v writes", frames, writes, n+2, bound)
	}
	t.Logf("%v frames in %v writes", frames, writes)

	// A client that asks for frames=lines gets the same frames, several to a message.
	lines := apptest.Dial(t, apptest.WSURLFor(s.WSURL, bob.Token, "lines", &zero)+"&"+protocol.FramesParam+"="+protocol.FramesLines)
	lines.NextOf(protocol.TypeWelcome, wait)
	for i := range n {
		if f := lines.NextOf(protocol.TypeMessage, wait); f.Text != fmt.Sprintf("text %d", i) {
			t.Fatalf("catch-up frame %d with frames=lines: %+v", i, f)
		}
	}
	lines.NextOf(protocol.TypeSynced, wait)
	if messages, bound := lines.Messages.Load(), int64(2+(n+63)/64+2); messages > bound {
		t.Fatalf("frames=lines: %d frames in %d messages, want at most %d", n+2, messages, bound)
	}

	// Any other value of frames is refused before the upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, apptest.WSURLFor(s.WSURL, bob.Token, "x", nil)+"&"+protocol.FramesParam+"=json", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("frames=json: %v, %v; want 400", resp, err)
	}
}
