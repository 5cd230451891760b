package flatjson

import "testing"

// Each reader takes exactly the JSON it promises, and leaves the input as it was otherwise.
func TestReader(t *testing.T) {
	for _, c := range []struct {
		in       string
		int, uin bool // Int, Uint accept it
	}{
		{"0", true, true}, {"7,", true, true}, {"-7", true, false}, {"-0", true, false},
		{"01", false, false}, {"1.5", false, false}, {"1e3", false, false}, {"-", false, false}, {"", false, false},
		{"9223372036854775807", true, true}, {"9223372036854775808", false, true},
		{"18446744073709551616", false, false}, {`"1"`, false, false},
	} {
		r := Reader{B: []byte(c.in)}
		var i int64
		if r.Int(&i) != c.int || !c.int && string(r.B) != c.in {
			t.Errorf("Int(%q) = %v, left %q", c.in, !c.int, r.B)
		}
		r = Reader{B: []byte(c.in)}
		var u uint64
		if r.Uint(&u) != c.uin || !c.uin && string(r.B) != c.in {
			t.Errorf("Uint(%q) = %v, left %q", c.in, !c.uin, r.B)
		}
	}
	for in, ok := range map[string]bool{`"héllo 😀"`: true, `""`: true, `"a\"b"`: false, `"a\nb"`: false,
		"\"a\x01\"": false, "\"\xff\"": false, `"open`: false, `x`: false} {
		r := Reader{B: []byte(in + ",")}
		var s string
		if r.Str(&s) != ok || ok && (string(r.B) != "," || `"`+s+`"` != in) || !ok && string(r.B) != in+"," {
			t.Errorf("Str(%q): ok %v, got %q, left %q", in, !ok, s, r.B)
		}
	}
	r := Reader{B: []byte(`{"v":1}`)}
	if r.Lit(`{"w"`) || !r.Lit(`{"v":`) || string(r.B) != `1}` {
		t.Errorf("Lit left %q", r.B)
	}
}
