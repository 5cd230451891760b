package gateway

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// readFrame returns what io.ReadAll(io.LimitReader(r, limit+1)) returns, for frames below, at
// and over the limit, whatever the buffer it is given and however the reader splits its reads.
func TestReadFrameIsReadAllUpToOneOverTheLimit(t *testing.T) {
	const limit = 3000
	rng := rand.New(rand.NewPCG(1, 2))
	readers := map[string]func([]byte) io.Reader{
		"whole":    func(p []byte) io.Reader { return bytes.NewReader(p) },
		"one byte": func(p []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(p)) },
		"halves":   func(p []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(p)) },
		"data+EOF": func(p []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(p)) },
	}
	for _, size := range []int{0, 1, 511, 512, 1023, 1024, 1025, limit - 1, limit, limit + 1, limit + 2, 3 * limit} {
		frame := make([]byte, size)
		for i := range frame {
			frame[i] = byte(rng.IntN(256))
		}
		want, _ := io.ReadAll(io.LimitReader(bytes.NewReader(frame), limit+1))
		for name, reader := range readers {
			for _, buf := range [][]byte{nil, make([]byte, 0, 7), make([]byte, 10, 1<<10), make([]byte, 0, 2*limit)} {
				got, err := readFrame(reader(frame), buf, limit)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("size %d, %s reader, buffer cap %d: %d bytes, %v; want %d bytes", size, name, cap(buf), len(got), err, len(want))
				}
			}
		}
	}
}

func TestReadFrameReturnsTheReadersError(t *testing.T) {
	broken := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader([]byte("half a fra")), iotest.ErrReader(broken))
	if got, err := readFrame(r, nil, 100); !errors.Is(err, broken) || string(got) != "half a fra" {
		t.Fatalf("readFrame = %q, %v; want the 10 bytes read and %v", got, err, broken)
	}
}

// A send frame of typical size read as the read loop reads it, against io.ReadAll as it did
// before. On the 2-core machine of docs/performance.md: see its eighteenth round.
func BenchmarkReadFrame(b *testing.B) {
	frame := []byte(`{"type":"send","id":"r-1042","conversation_id":"01JE5Q5N2Q9W3Y1V7B5X0K8M4C","client_msg_id":"01JE5Q9P3T6E1F8A2C4D7G0H5J","text":"see you at the station at seven, the usual platform"}`)
	b.Run("readFrame", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf := frameBuffers.get()
			*buf, _ = readFrame(bytes.NewReader(frame), *buf, protocol.MaxFrameBytes)
			frameBuffers.put(buf)
		}
	})
	b.Run("io.ReadAll", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = io.ReadAll(io.LimitReader(bytes.NewReader(frame), protocol.MaxFrameBytes+1))
		}
	})
}
