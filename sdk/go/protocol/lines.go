package protocol

import (
	"bytes"
	"iter"
)

// A client that connects with the query parameter frames=lines lets the server put several of
// its frames in one WebSocket message, one per line: each frame is compact JSON (a newline in
// a string is escaped), so a message is split at every '\n'. A message of one frame is the
// frame itself, as without the parameter; client frames are always one to a message. Fewer,
// larger messages cost both ends less per frame, a catch-up most of all.
const (
	FramesParam = "frames"
	FramesLines = "lines"
)

// Frames yields the frames of one server message of a frames=lines connection: its lines. A
// message of one frame yields that frame.
func Frames(message []byte) iter.Seq[[]byte] {
	return bytes.SplitSeq(message, []byte{'\n'})
}
