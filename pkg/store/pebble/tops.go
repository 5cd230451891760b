package pebble

import (
	"encoding/binary"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// maxTops bounds how many conversations tops remembers (about 100 bytes each).
const maxTops = 100_000

// tops remembers, per conversation, the highest seq of a message stored in it, so that
// inserting a message above it — every new message — needs no read of its slot to know that the
// slot is free. Messages are never removed from the store and every insert goes through
// insertMessage, which raises the top while it holds the slot's stripe: a later insert of the
// same seq (a redelivery) finds the top at or above it and reads the slot.
type tops struct {
	mu sync.Mutex
	m  map[string]uint64
}

// top returns the highest stored seq of conv (0: none), from memory or else from one seek.
func (t *tops) top(db *pebble.DB, conv string) (uint64, error) {
	t.mu.Lock()
	v, ok := t.m[conv]
	t.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := lastSeq(db, conv)
	if err != nil {
		return 0, err
	}
	t.raise(conv, v)
	return v, nil
}

// raise records that conv holds a message at seq. When the map is full it forgets an
// arbitrary conversation, which the next top reads again.
func (t *tops) raise(conv string, seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]uint64)
	}
	if v, ok := t.m[conv]; ok {
		t.m[conv] = max(v, seq)
		return
	}
	if len(t.m) >= maxTops {
		for k := range t.m {
			delete(t.m, k)
			break
		}
	}
	t.m[conv] = seq
}

// lastSeq is the seq of conv's last stored message, 0 if it has none.
func lastSeq(db *pebble.DB, conv string) (uint64, error) {
	prefix := key(tagMsg, conv)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	var seq uint64
	if it.Last() && len(it.Key()) == len(prefix)+8 {
		seq = binary.BigEndian.Uint64(it.Key()[len(prefix):])
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	return seq, nil
}
