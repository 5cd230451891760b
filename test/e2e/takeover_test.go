package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/sdk/go/client"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

// TestAFanoutCrashHandsItsPartitionOver: a split deployment with two fanout processes and
// default flags; the one consuming the (only) partition is killed with kill -9 and not
// restarted. Live delivery to a connected device resumes once the survivor takes the partition
// over: about the fanout liveness (1 s), not the pin's lapse (8 s). Nothing acknowledged is lost.
func TestAFanoutCrashHandsItsPartitionOver(t *testing.T) {
	t.Setenv("NATTER_JWT_SECRET", strings.Repeat("k", 48))
	main := StartNatter(t, t.TempDir(), "--target", "gateway,api,persister,presence,push,store")
	dirs := []string{filepath.Join(t.TempDir(), "fanout-a"), filepath.Join(t.TempDir(), "fanout-b")}
	fanouts := map[string]*Process{} // instance id -> process
	for _, dir := range dirs {
		p := StartNatter(t, dir, "--target", "fanout", "--store", "remote", "--nats-url", main.Addrs.NATS)
		id, err := os.ReadFile(filepath.Join(dir, "fanout.id"))
		if err != nil {
			t.Fatal(err)
		}
		fanouts[strings.TrimSpace(string(id))] = p
	}
	// One partition: the live instance first by id consumes it.
	ids := make([]string, 0, len(fanouts))
	for id := range fanouts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	owner := fanouts[ids[0]]

	alice, bob := signUp(t, main.Addrs.API, "alice"), signUp(t, main.Addrs.API, "bob")
	conv := openDirect(t, main.Addrs.API, alice, bob)
	dial := func(a account, device string) *client.Client {
		zero := uint64(0)
		c, err := client.Dial(client.Config{Discover: apptest.Discover(main.Addrs.API), Token: a.Token, DeviceID: device, Cursor: &zero,
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		<-c.Ready()
		return c
	}
	phone, laptop := dial(alice, "phone"), dial(bob, "laptop")

	var mu sync.Mutex
	arrived := map[uint64]time.Time{}
	go func() {
		for ev := range laptop.Events() {
			if ev.Type == protocol.TypeMessage {
				mu.Lock()
				arrived[ev.Seq] = time.Now()
				mu.Unlock()
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var acked []uint64
	send := func() uint64 {
		ack, err := phone.SendWithID(ctx, conv, fmt.Sprintf("m%d", len(acked)), "hello")
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, ack.Seq)
		return ack.Seq
	}
	has := func(seq uint64) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		at, ok := arrived[seq]
		return at, ok
	}
	for range 20 { // delivered live before the crash
		send()
		time.Sleep(20 * time.Millisecond)
	}

	killed := time.Now()
	owner.Kill()
	first := send() // the first message after the crash
	for {
		if _, ok := has(first); ok {
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("no delivery within 30 s of the fanout crash")
		}
		send()
		time.Sleep(20 * time.Millisecond)
	}
	at, _ := has(first)
	pause := at.Sub(killed)
	t.Logf("fanout owning the partition killed: live delivery resumed %s later (liveness %s, pinned TTL %s)",
		pause.Round(time.Millisecond), streams.DefaultOptions().FanoutLiveness, streams.DefaultOptions().FanoutPinnedTTL())
	// The figure is logged above; the test holds the mechanism, with room for a loaded machine:
	// waiting for the dead owner's pin to lapse would take longer.
	if pause >= streams.DefaultOptions().FanoutPinnedTTL() {
		t.Fatalf("delivery paused %s after the crash: the survivor waited for the pin to lapse", pause)
	}
	for _, seq := range acked {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, ok := has(seq); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("acknowledged seq %d never reached bob's laptop", seq)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
