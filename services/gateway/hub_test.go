package gateway

import (
	"testing"
	"time"

	"github.com/natter-chat/natter/streams"
)

func TestChainsFollow(t *testing.T) {
	c := chains{}
	now := time.Now()
	steps := []struct {
		chain, n uint64
		follows  bool
	}{
		{0, 0, true},  // not numbered
		{1, 1, true},  // a new chain starts at 1
		{1, 2, true},  // and goes on
		{1, 2, true},  // a repeat is no hole
		{1, 4, false}, // 3 was lost
		{1, 5, true},  // the chain goes on after the hole
		{1, 3, true},  // 3 coming late opens no new hole
		{1, 6, true},
		{2, 3, false}, // a new chain first seen at 3: 1 and 2 were lost
		{2, 4, true},
	}
	for i, st := range steps {
		if got := c.follows(streams.Delivery{Chain: st.chain, N: st.n}, now); got != st.follows {
			t.Errorf("step %d (chain %d, n %d): follows %v, want %v", i, st.chain, st.n, got, st.follows)
		}
	}

	// Quiet chains are forgotten once there are many; live ones are not.
	for id := range uint64(chainsKept) {
		c.follows(streams.Delivery{Chain: 100 + id, N: 1}, now)
	}
	c.follows(streams.Delivery{Chain: 1, N: 7}, now.Add(chainQuiet))
	c.follows(streams.Delivery{Chain: 999, N: 1}, now.Add(chainQuiet+time.Second))
	if _, ok := c[100]; ok {
		t.Error("a chain quiet for longer than chainQuiet is still kept")
	}
	if !c.follows(streams.Delivery{Chain: 1, N: 8}, now.Add(chainQuiet+time.Second)) {
		t.Error("a chain that spoke recently was forgotten")
	}
}
