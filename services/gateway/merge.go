package gateway

import (
	"container/heap"
	"iter"

	"github.com/natter-chat/natter/pkg/store"
)

// seqMerge is catch-up's k-way merge: it yields the events of several conversations in one seq
// order, each conversation's events coming in seq order from a sequence of its own, a batch at a
// time (each pull from a sequence switches goroutines: one per event showed in the catch-up's
// profile). A sequence may reuse its batch's array for the next batch. Call stop when done,
// also after an early return, to release the sequences not read to their end.
type seqMerge struct{ h cursors }

// add joins a conversation's events to the merge (an empty sequence is dropped at once).
func (m *seqMerge) add(seq iter.Seq[[]store.Message]) {
	next, stop := iter.Pull(seq)
	c := &cursor{next: next, stop: stop}
	if !c.advance() {
		stop()
		return
	}
	heap.Push(&m.h, c)
}

// next returns the lowest-seq event not yet returned; false when every sequence is done.
func (m *seqMerge) next() (store.Message, bool) {
	if m.h.Len() == 0 {
		return store.Message{}, false
	}
	c := m.h[0]
	msg := c.head()
	if c.advance() {
		heap.Fix(&m.h, 0)
	} else {
		c.stop()
		heap.Pop(&m.h)
	}
	return msg, true
}

// stop releases every sequence still open.
func (m *seqMerge) stop() {
	for _, c := range m.h {
		c.stop()
	}
	m.h = nil
}

// cursor is one conversation's pending events in the merge: batch[i] is its head.
type cursor struct {
	next  func() ([]store.Message, bool)
	stop  func()
	batch []store.Message
	i     int
}

func (c *cursor) head() store.Message { return c.batch[c.i] }

// advance moves to the next event, pulling the next non-empty batch when this one is done.
func (c *cursor) advance() bool {
	if c.i+1 < len(c.batch) {
		c.i++
		return true
	}
	for {
		batch, ok := c.next()
		if !ok {
			c.batch, c.i = nil, 0
			return false
		}
		if len(batch) > 0 {
			c.batch, c.i = batch, 0
			return true
		}
	}
}

type cursors []*cursor

func (h cursors) Len() int           { return len(h) }
func (h cursors) Less(i, j int) bool { return h[i].head().Seq < h[j].head().Seq }
func (h cursors) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursors) Push(x any)        { *h = append(*h, x.(*cursor)) }
func (h *cursors) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
