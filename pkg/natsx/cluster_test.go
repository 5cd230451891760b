package natsx_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/streams"
)

// TestClusterSurvivesLosingTheStreamLeader is invariant 1 in a replicated cluster: with an R3
// stream on three nodes, shutting down the node that leads the stream loses no acknowledged
// message, and publishing succeeds again once the other two have elected a new leader. The
// node then comes back and catches up.
func TestClusterSurvivesLosingTheStreamLeader(t *testing.T) {
	c := natsxtest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	opts := streams.DefaultOptions()
	opts.Replicas = 3
	js := c.Define(opts)
	publish := func(i int) {
		t.Helper()
		// Retry across the election: a publish may time out or find no responders while the
		// surviving replicas vote. The same Nats-Msg-Id makes a retry of an accepted publish a
		// duplicate, not a second message.
		var last error
		for attempt := 0; attempt < 100; attempt++ {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(pctx, streams.ChatSubject("c1", streams.KindMsg), []byte(`{}`),
				jetstream.WithMsgID(fmt.Sprintf("m%d", i)))
			pcancel()
			if err == nil {
				return
			}
			last = err
			if ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("publish %d: %v", i, last)
	}
	for i := range 10 {
		publish(i)
	}

	leader := c.WaitStreamLeader(streams.ChatStream, 10*time.Second)
	c.Shutdown(leader)
	for i := 10; i < 20; i++ {
		publish(i)
	}
	newLeader := c.WaitStreamLeader(streams.ChatStream, 10*time.Second)
	if newLeader == leader {
		t.Fatalf("node %d was shut down but still leads", leader)
	}
	if n := lastSeq(ctx, t, js); n != 20 {
		t.Fatalf("stream holds %d messages after failover, want 20", n)
	}

	// The old leader returns as a follower and catches up from the new one.
	c.Restart(leader)
	deadline := time.Now().Add(30 * time.Second)
	for !c.Servers[leader].JetStreamIsStreamCurrent("$G", streams.ChatStream) {
		if time.Now().After(deadline) {
			t.Fatalf("restarted node %d did not catch up on %s", leader, streams.ChatStream)
		}
		time.Sleep(50 * time.Millisecond)
	}
	publish(20)
	if n := lastSeq(ctx, t, js); n != 21 {
		t.Fatalf("stream holds %d messages after the restart, want 21", n)
	}
}

func lastSeq(ctx context.Context, t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	var last error
	for range 50 {
		st, err := js.Stream(ctx, streams.ChatStream)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil {
				if info.State.Msgs != info.State.LastSeq {
					t.Fatalf("stream has %d messages but last seq %d", info.State.Msgs, info.State.LastSeq)
				}
				return info.State.LastSeq
			}
		}
		last = err
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("stream info: %v", last)
	return 0
}
