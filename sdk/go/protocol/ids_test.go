package protocol

import (
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	accept := []string{"a", "Z", "0", "_", "-", "abc_-09AZ", "01J9ZK3V8Q2W5X7Y9A1B3C5D7E", strings.Repeat("x", 64)}
	reject := []string{
		"", "a.b", ".", "*", ">", "a*", "a>", "a b", " ", "a\tb", "a\nb", "a\x00b", "a/b", "a:b", "$KV",
		strings.Repeat("x", 65), "é", "ü", "日本", "ａ", // fullwidth a
		"a\u200bb", // zero-width space
		string([]byte{0xff}),
	}
	for _, s := range accept {
		if !ValidID(s) {
			t.Errorf("ValidID(%q) = false, want true", s)
		}
	}
	for _, s := range reject {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true, want false", s)
		}
	}
}

func TestValidHandle(t *testing.T) {
	accept := []string{"abc", "a_1", "___", "0123456789", strings.Repeat("z", 32)}
	reject := []string{"", "ab", strings.Repeat("z", 33), "Abc", "a-b", "a b", "a.b", "jürgen", "\u212Aate", "ａbc"}
	for _, h := range accept {
		if !ValidHandle(h) {
			t.Errorf("ValidHandle(%q) = false, want true", h)
		}
	}
	for _, h := range reject {
		if ValidHandle(h) {
			t.Errorf("ValidHandle(%q) = true, want false", h)
		}
	}
}
