package wire

import (
	"errors"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
)

// TestScopeIsMemberSees: the scopes contain exactly the seqs their member sees, for every shape
// of membership (from the start, added later, removed, removed at once, re-joined after an
// earlier interval).
func TestScopeIsMemberSees(t *testing.T) {
	for _, earlier := range [][]store.Interval{nil, {{JoinedSeq: 1, LeftSeq: 3}}, {{JoinedSeq: 0, LeftSeq: 2}, {JoinedSeq: 4, LeftSeq: 6}}} {
		for joined := uint64(0); joined <= 12; joined++ {
			for left := uint64(0); left <= 12; left++ {
				m := store.Member{ConversationID: "c", JoinedSeq: joined, LeftSeq: left, Earlier: earlier}
				scopes := ScopesOf(m)
				for seq := uint64(1); seq <= 14; seq++ {
					got := false
					for _, s := range scopes {
						got = got || s.Contains(seq)
					}
					if got != m.Sees(seq) {
						t.Fatalf("%+v seq %d: scopes %v say %v, Sees %v", m, seq, scopes, got, m.Sees(seq))
					}
				}
				if len(scopes) > 0 {
					if err := (Query{Text: "x", Limit: 1, Scopes: scopes}).Validate(); err != nil {
						t.Fatalf("%+v: scopes %+v refused: %v", m, scopes, err)
					}
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

func TestErrorCodesUnwrap(t *testing.T) {
	for _, tc := range []struct {
		code string
		want error
	}{{CodeBadQuery, ErrBadQuery}, {CodeUnavailable, ErrUnavailable}, {CodeInternal, nil}} {
		err := error(&Error{Code: tc.code, Message: "x"})
		if got := errors.Unwrap(err); got != tc.want {
			t.Errorf("%s unwraps to %v, want %v", tc.code, got, tc.want)
		}
	}
}
