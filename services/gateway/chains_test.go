package gateway

import (
	"testing"
	"time"

	"github.com/natter-chat/natter/streams"
)

func TestChainsFollow(t *testing.T) {
	c := chains{links: map[uint64]chainLink{}}
	now := time.Now()
	steps := []struct {
		chain, n uint64
		end      bool
		unbroken bool
	}{
		{0, 0, false, true},  // not numbered
		{1, 1, false, true},  // a new chain starts at 1
		{1, 2, false, true},  // and goes on
		{1, 2, false, true},  // a repeat is no hole
		{1, 4, false, false}, // 3 was lost
		{1, 5, false, true},  // the chain goes on after the hole
		{1, 3, false, true},  // 3 coming late opens no new hole
		{2, 1, false, false}, // chain 1 has not ended: some of it may still come, or never
		{2, 2, false, true},
		{1, 6, false, false}, // 1 again after 2: deliveries overtook each other
		{1, 7, true, true},   // 1 ends
		{3, 1, false, true},  // so 3 follows on from it
		{3, 2, true, true},   // 3 ends
		{2, 3, true, true},   // 2's end, late, breaks nothing
		{4, 3, false, false}, // a new chain first seen at 3: 1 and 2 were lost
		{4, 5, true, false},  // and an end after a hole is a hole
	}
	for i, st := range steps {
		got, why := c.follows(streams.Delivery{Chain: st.chain, N: st.n, End: st.end}, now)
		if got != st.unbroken {
			t.Errorf("step %d (chain %d, n %d, end %v): unbroken %v (%q), want %v", i, st.chain, st.n, st.end, got, why, st.unbroken)
		}
		if !got && why == "" {
			t.Errorf("step %d: broken without a reason", i)
		}
	}

	// Quiet chains are forgotten once there are many; live ones are not.
	for id := range uint64(chainsKept) {
		c.follows(streams.Delivery{Chain: 100 + id, N: 1, End: true}, now)
	}
	c.follows(streams.Delivery{Chain: 5, N: 1}, now.Add(chainQuiet))
	c.follows(streams.Delivery{Chain: 999, N: 1, End: true}, now.Add(chainQuiet+time.Second))
	if _, ok := c.links[100]; ok {
		t.Error("a chain quiet for longer than chainQuiet is still kept")
	}
	if ok, why := c.follows(streams.Delivery{Chain: 5, N: 2}, now.Add(chainQuiet+time.Second)); !ok {
		t.Errorf("a chain that spoke recently was forgotten: %s", why)
	}
}
