package gateway

import "sync"

// buffers lends byte buffers, and takes back those whose capacity stays within maxCap.
type buffers struct {
	pool   sync.Pool
	maxCap int
}

// newBuffers lends buffers of size bytes at first, keeping those that grow up to maxCap.
func newBuffers(size, maxCap int) *buffers {
	return &buffers{pool: sync.Pool{New: func() any { b := make([]byte, 0, size); return &b }}, maxCap: maxCap}
}

// get lends an empty buffer.
func (p *buffers) get() *[]byte { return p.pool.Get().(*[]byte) }

// put takes b back emptied, unless it grew past maxCap; the borrower must not use it afterwards.
func (p *buffers) put(b *[]byte) {
	if cap(*b) <= p.maxCap {
		*b = (*b)[:0]
		p.pool.Put(b)
	}
}
