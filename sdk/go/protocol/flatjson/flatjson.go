// Package flatjson reads the simplest JSON — literals, strings that decode to their own bytes,
// integers — from the front of a byte slice, for decoders that read the shape natter's frames
// and events nearly always have without reflection, and leave anything else to encoding/json.
// Each method consumes what it read and reports true, or consumes nothing and reports false.
// AppendString and AppendMember write strings for the encoders of those shapes, as
// encoding/json does.
package flatjson

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// Reader consumes B from the front.
type Reader struct{ B []byte }

// Lit consumes s if the input starts with it.
func (r *Reader) Lit(s string) bool {
	if len(r.B) < len(s) || string(r.B[:len(s)]) != s {
		return false
	}
	r.B = r.B[len(s):]
	return true
}

// Str consumes a JSON string that decodes to its own bytes: no escape, no control character,
// valid UTF-8 (json.Unmarshal would replace invalid bytes).
func (r *Reader) Str(out *string) bool {
	if len(r.B) == 0 || r.B[0] != '"' {
		return false
	}
	end := bytes.IndexByte(r.B[1:], '"')
	if end < 0 {
		return false
	}
	s := r.B[1 : 1+end]
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '\\' {
				return false
			}
			i++
			continue
		}
		ru, size := utf8.DecodeRune(s[i:])
		if ru == utf8.RuneError && size == 1 {
			return false
		}
		i += size
	}
	*out = string(s)
	r.B = r.B[2+end:]
	return true
}

// Int consumes a JSON integer that fits an int64: an optional minus, then 0 or digits without a
// leading zero, and no fraction or exponent.
func (r *Reader) Int(out *int64) bool {
	n := r.integer(true)
	if n == 0 {
		return false
	}
	v, err := strconv.ParseInt(string(r.B[:n]), 10, 64)
	if err != nil {
		return false
	}
	*out, r.B = v, r.B[n:]
	return true
}

// Uint consumes a JSON integer that fits a uint64: 0, or digits without a leading zero, and no
// fraction or exponent.
func (r *Reader) Uint(out *uint64) bool {
	n := r.integer(false)
	if n == 0 {
		return false
	}
	v, err := strconv.ParseUint(string(r.B[:n]), 10, 64)
	if err != nil {
		return false
	}
	*out, r.B = v, r.B[n:]
	return true
}

// integer is the length of the JSON integer the input starts with (0: none, or one this
// package does not read).
func (r *Reader) integer(signed bool) int {
	n := 0
	if signed && n < len(r.B) && r.B[n] == '-' {
		n++
	}
	start := n
	for n < len(r.B) && r.B[n] >= '0' && r.B[n] <= '9' {
		n++
	}
	if n == start || r.B[start] == '0' && n-start > 1 {
		return 0
	}
	if n < len(r.B) && (r.B[n] == '.' || r.B[n] == 'e' || r.B[n] == 'E') {
		return 0
	}
	return n
}
