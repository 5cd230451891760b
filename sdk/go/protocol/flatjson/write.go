package flatjson

import (
	"encoding/json"
	"unicode/utf8"
)

// AppendString appends s as a JSON string, as encoding/json writes it: s goes in as it is when
// encoding/json would copy it unchanged (no quote, backslash, control character, <, >, &,
// invalid UTF-8, U+2028 or U+2029), the usual case; otherwise encoding/json writes it.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if plainASCII[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			return appendEscaped(b, s)
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return appendEscaped(b, s)
		}
		i += size
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendMember appends name (a member's `,"key":`, or `{"key":` for the first) and s as
// AppendString writes it.
func AppendMember(b []byte, name, s string) []byte {
	return AppendString(append(b, name...), s)
}

// plainASCII marks the bytes encoding/json copies into a string unchanged: ASCII other than
// control characters, quote, backslash, <, > and &. (Bytes from utf8.RuneSelf up are not plain:
// AppendString decodes their rune.)
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendMarshal appends name (a member's `,"key":`) and json.Marshal's encoding of v: for the
// rare bodies the encoders of natter's common shapes leave to encoding/json.
func AppendMarshal(b []byte, name string, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(append(b, name...), j...), nil
}

func appendEscaped(b []byte, s string) []byte {
	j, _ := json.Marshal(s) // a string always encodes
	return append(b, j...)
}
