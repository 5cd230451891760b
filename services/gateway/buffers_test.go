package gateway

import "testing"

// buffers takes back a buffer emptied, and never one grown past its bound.
func TestBuffersKeepOnlyWhatStaysWithinTheirBound(t *testing.T) {
	p := newBuffers(8, 16)
	big := make([]byte, 3, 32)
	p.put(&big)
	small := make([]byte, 5, 16)
	p.put(&small)
	for range 100 {
		b := p.get()
		if b == &big {
			t.Fatal("a buffer grown past the bound was lent again")
		}
		if len(*b) != 0 {
			t.Fatalf("a buffer was lent holding %d bytes", len(*b))
		}
	}
}
