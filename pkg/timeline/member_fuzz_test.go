package timeline

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeMember: the membership change stored with a member event decodes, or is nil; what
// decodes encodes and decodes to the same.
func FuzzDecodeMember(f *testing.F) {
	f.Add([]byte(`{"action":"added","user_ids":["u1","u2"],"by":"u0"}`))
	f.Add([]byte(``))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"user_ids":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := DecodeMember(raw)
		if c == nil {
			return
		}
		again := DecodeMember(encodeMember(*c))
		if again == nil {
			t.Fatalf("%q: its own encoding does not decode", raw)
		}
		a, _ := json.Marshal(c)
		b, _ := json.Marshal(again)
		if string(a) != string(b) {
			t.Fatalf("not stable: %s, then %s", a, b)
		}
	})
}
