package gateway

import (
	"time"

	"github.com/natter-chat/natter/streams"
)

// chains follows the numbered deliveries of the fanout partition runs that feed this gateway
// (streams.Delivery.Chain). A socket may take live events of one chain, in its order, after its
// catch-up; wherever that breaks — a number skipped, or the deliveries moving to another chain
// before the last one ended — a delivery may be missing or come late, and the sockets not caught
// up past that point must resync before anything later reaches them.
type chains struct {
	links   map[uint64]chainLink // chain id -> what was seen of it
	current uint64               // the chain of the last numbered delivery
}

type chainLink struct {
	n     uint64    // the highest N seen
	ended bool      // its end was seen: every delivery of it came before
	seen  time.Time // the last delivery of it
}

// chainsKept is how many chains are kept before those quiet for chainQuiet are forgotten. A
// forgotten chain that speaks again looks broken, which costs one needless resync.
const (
	chainsKept = 64
	chainQuiet = 10 * time.Minute
)

// follows records d and reports whether it goes on unbroken from the deliveries before it, and
// if not, why. Deliveries that are not numbered always do.
//
// A chain seen for the first time must start at 1: fanout delivers only to gateways in the
// routes, so to a new gateway (its id is random) only after it subscribed. A chain may take over
// from another only once that one ended (its run drained, acknowledged and said so): then every
// event before the new chain's first was delivered by the old one, and arrived before its end.
func (c *chains) follows(d streams.Delivery, now time.Time) (bool, string) {
	if d.Chain == 0 {
		return true, ""
	}
	link, known := c.links[d.Chain]
	if !known && len(c.links) >= chainsKept {
		for id, l := range c.links {
			if now.Sub(l.seen) > chainQuiet {
				delete(c.links, id)
			}
		}
	}
	prev, switched := c.links[c.current], c.current != 0 && c.current != d.Chain
	unbroken, why := d.N <= link.n+1, "a delivery from fanout was lost in transit"
	if d.N <= link.n { // a late one of this chain: it opens no hole, and changes nothing
		return true, ""
	}
	link.n, link.seen, link.ended = d.N, now, link.ended || d.End
	c.links[d.Chain] = link
	if d.End {
		return unbroken, why
	}
	if switched && !prev.ended && unbroken {
		unbroken, why = false, "fanout deliveries moved to another run before the last one ended"
	}
	c.current = d.Chain
	return unbroken, why
}
