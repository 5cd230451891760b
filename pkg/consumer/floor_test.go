package consumer

import (
	"math"
	"testing"
	"time"

	"github.com/natter-chat/natter/streams"
)

// TestFloorIsAskedOnlyWhenBelowWhatIsWanted: Read answers from what it knows while that is
// enough or fresh, and asks JetStream otherwise; a missing consumer's floor is 0.
func TestFloorIsAskedOnlyWhenBelowWhatIsWanted(t *testing.T) {
	e := newEnv(t)
	last := e.publish(t, 5)
	r := recorder{}
	e.start(t, Config{}, r.handle, Hooks{})
	e.settled(t, last)

	f := &Floor{Stream: streams.ChatStream, Consumer: testDurable, Refresh: time.Hour}
	if got, err := f.Read(e.ctx, e.js, math.MaxUint64); err != nil || got != last {
		t.Fatalf("first read: %d, %v; want %d", got, err, last)
	}
	more := e.publish(t, 3)
	e.settled(t, more)
	if got, _ := f.Read(e.ctx, e.js, math.MaxUint64); got != last {
		t.Fatalf("read within Refresh: %d, want the known %d", got, last)
	}
	if got, _ := f.Read(e.ctx, e.js, last); got != last {
		t.Fatalf("read wanting no more than known: %d, want %d", got, last)
	}
	f.Refresh = 0
	if got, _ := f.Read(e.ctx, e.js, more); got != more {
		t.Fatalf("read wanting more after Refresh: %d, want %d", got, more)
	}

	missing := &Floor{Stream: streams.ChatStream, Consumer: "nobody"}
	if got, err := missing.Read(e.ctx, e.js, 1); err != nil || got != 0 {
		t.Fatalf("floor of a missing consumer: %d, %v; want 0", got, err)
	}
}
