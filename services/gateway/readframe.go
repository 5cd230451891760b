package gateway

import "io"

// frameBuffers lends a read loop the buffer one client frame is read into, from the moment the
// frame starts until it is decoded (the decoded frame copies what it keeps): an idle socket holds
// none, and a frame reuses a buffer already grown to frames' size instead of growing a new one
// from 512 bytes (io.ReadAll), about 1 % of natter's CPU in a 1:1 profile. One grown past 64 KiB
// (a frame of hundreds of kilobytes) is left to the garbage collector.
var frameBuffers = newBuffers(1<<10, 64<<10)

// readFrame reads r to its end into b[:0], growing it as needed, and stops after limit+1 bytes:
// a result longer than limit means the frame is over the limit and the rest of it is unread. It
// returns what io.ReadAll(io.LimitReader(r, limit+1)) would.
func readFrame(r io.Reader, b []byte, limit int) ([]byte, error) {
	b = b[:0]
	for len(b) <= limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):min(cap(b), limit+1)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}
