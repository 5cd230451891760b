package wire

import (
	"errors"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
)

// TestScopeIsMemberSees: a scope contains exactly the seqs its member sees, for every shape of
// membership (from the start, added later, removed, removed at once).
func TestScopeIsMemberSees(t *testing.T) {
	for joined := uint64(0); joined <= 12; joined++ {
		for left := uint64(0); left <= 12; left++ {
			m := store.Member{ConversationID: "c", JoinedSeq: joined, LeftSeq: left}
			scope, ok := ScopeOf(m)
			for seq := uint64(1); seq <= 14; seq++ {
				if got := ok && scope.Contains(seq); got != m.Sees(seq) {
					t.Fatalf("joined %d left %d seq %d: scope %v (ok %v), Sees %v", joined, left, seq, got, ok, m.Sees(seq))
				}
			}
			if ok {
				if err := (Query{Text: "x", Limit: 1, Scopes: []Scope{scope}}).Validate(); err != nil {
					t.Fatalf("joined %d left %d: scope %+v refused: %v", joined, left, scope, err)
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Query{Text: "x", Limit: 1, Scopes: []Scope{{ConversationID: "c"}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]Query{
		"empty text":  {Limit: 1},
		"long text":   {Text: string(make([]rune, MaxTextRunes+1)), Limit: 1},
		"limit 0":     {Text: "x"},
		"limit 101":   {Text: "x", Limit: MaxLimit + 1},
		"long cursor": {Text: "x", Limit: 1, Cursor: string(make([]byte, MaxCursorBytes+1))},
		"no conv":     {Text: "x", Limit: 1, Scopes: []Scope{{}}},
		"empty scope": {Text: "x", Limit: 1, Scopes: []Scope{{ConversationID: "c", After: 5, UpTo: 5}}},
	} {
		if err := q.Validate(); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
