package pebble

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// idFilter is a Bloom filter over the client-id keys (tagCmid) the store holds, so that
// insertMessage can skip its read of the key when the filter says it is certainly absent — the
// answer for nearly every new message. That read misses through the memtables and every
// level's own filter, and was 6 % of natter's CPU per message.
//
// It never answers "absent" for a key the store holds: the keys already in the store are added
// by a scan at open (until it ends, every answer is "maybe"), and every key inserted since is
// added under the key's stripe lock, before another insert of it can ask. Keys are never
// removed from the store (a removal would only leave a "maybe"). It grows by layers, each twice
// the one before, at 10 bits a key: a false "maybe" for one or two absent keys in a hundred,
// and 1.25 to 2.5 bytes of memory per message stored with a client id.
type idFilter struct {
	seed  maphash.Seed
	ready atomic.Bool // the scan of the keys present at open has ended

	mu     sync.RWMutex // write-held to add a layer
	layers []*bloomLayer
}

const (
	filterFirstKeys = 1 << 20 // keys in the first layer (1.25 MB)
	filterProbes    = 7       // bits set per key: about 1 % false positives at 10 bits a key
)

// bloomLayer holds up to max keys in 10 bits each.
type bloomLayer struct {
	bits []atomic.Uint64
	max  int64
	n    atomic.Int64
}

func newBloomLayer(keys int64) *bloomLayer {
	return &bloomLayer{bits: make([]atomic.Uint64, (keys*10+63)/64), max: keys}
}

// newIDFilter makes a filter whose first layer holds firstKeys keys.
func newIDFilter(firstKeys int64) *idFilter {
	return &idFilter{seed: maphash.MakeSeed(), layers: []*bloomLayer{newBloomLayer(firstKeys)}}
}

// hash is k's hash, from which every layer takes its bit positions.
func (f *idFilter) hash(k []byte) uint64 { return maphash.Bytes(f.seed, k) }

// positions are the bits of a key of hash h in l (double hashing).
func (l *bloomLayer) positions(h uint64) (p [filterProbes]uint64) {
	m := uint64(len(l.bits)) * 64
	for i := range p {
		p[i] = (h + uint64(i)*(h>>33|1)) % m
	}
	return p
}

// add records k.
func (f *idFilter) add(k []byte) {
	f.mu.RLock()
	l := f.layers[len(f.layers)-1]
	full := l.n.Add(1) > l.max
	f.mu.RUnlock()
	if full {
		f.mu.Lock()
		if last := f.layers[len(f.layers)-1]; last == l { // nobody grew it meanwhile
			l = newBloomLayer(l.max * 2)
			f.layers = append(f.layers, l)
		} else {
			l = last
		}
		l.n.Add(1)
		f.mu.Unlock()
	}
	for _, bit := range l.positions(f.hash(k)) {
		l.bits[bit/64].Or(1 << (bit % 64))
	}
}

// mayHold reports whether k may be in the store: false only when it certainly is not.
func (f *idFilter) mayHold(k []byte) bool {
	if !f.ready.Load() {
		return true
	}
	h := f.hash(k)
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, l := range f.layers {
		if l.holds(h) {
			return true
		}
	}
	return false
}

// holds reports whether every bit of a key of hash h is set in l.
func (l *bloomLayer) holds(h uint64) bool {
	for _, bit := range l.positions(h) {
		if l.bits[bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}
