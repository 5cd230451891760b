package gateway

import (
	"iter"
	"slices"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
)

// conversation yields seqs in batches of two, reusing one array, with an empty batch between
// two batches and at the end.
func conversation(conv string, seqs ...uint64) iter.Seq[[]store.Message] {
	return func(yield func([]store.Message) bool) {
		batch := make([]store.Message, 0, 2)
		for chunk := range slices.Chunk(seqs, 2) {
			batch = batch[:0]
			for _, s := range chunk {
				batch = append(batch, store.Message{ConversationID: conv, Seq: s})
			}
			if !yield(batch) || !yield(nil) {
				return
			}
		}
	}
}

func TestSeqMergeYieldsOneSeqOrder(t *testing.T) {
	var m seqMerge
	defer m.stop()
	m.add(conversation("a", 2, 5, 9))
	m.add(conversation("b"))
	m.add(conversation("c", 1, 3, 4, 10, 11))
	m.add(conversation("d", 6))
	var got []uint64
	var convs []string
	for msg, ok := m.next(); ok; msg, ok = m.next() {
		got = append(got, msg.Seq)
		convs = append(convs, msg.ConversationID)
	}
	if want := []uint64{1, 2, 3, 4, 5, 6, 9, 10, 11}; !slices.Equal(got, want) {
		t.Fatalf("merged %v, want %v", got, want)
	}
	if want := []string{"c", "a", "c", "c", "a", "d", "a", "c", "c"}; !slices.Equal(convs, want) {
		t.Fatalf("conversations %v, want %v", convs, want)
	}
}

// A merge left early releases the sequences it did not read to their end (goleak, in TestMain,
// finds a pulled sequence that was never stopped).
func TestSeqMergeStopReleasesOpenSequences(t *testing.T) {
	var m seqMerge
	released := 0
	for _, conv := range []string{"a", "b"} {
		m.add(func(yield func([]store.Message) bool) {
			defer func() { released++ }()
			for s := uint64(1); ; s++ {
				if !yield([]store.Message{{ConversationID: conv, Seq: s}}) {
					return
				}
			}
		})
	}
	if msg, ok := m.next(); !ok || msg.Seq != 1 {
		t.Fatalf("first: %v %v", msg, ok)
	}
	m.stop()
	if released != 2 {
		t.Fatalf("%d of 2 sequences released by stop", released)
	}
}
