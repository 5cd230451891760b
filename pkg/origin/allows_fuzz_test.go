package origin

import "testing"

// FuzzAllows: an Origin header from a browser (or anyone) passes a one-origin policy only when
// it is that origin, as browsers serialize it; never a panic.
func FuzzAllows(f *testing.F) {
	for _, o := range []string{"https://chat.example.com", "https://CHAT.example.com:443", "https://chat.example.com.evil.org",
		"null", "https://chat.example.com/", "https://user@chat.example.com", "http://chat.example.com", "https://[::1]:8443", "%zz"} {
		f.Add(o)
	}
	p, err := Parse("https://chat.example.com")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, o string) {
		if !p.Allows(o) {
			return
		}
		if n, err := normalize(o); err != nil || n != "https://chat.example.com" {
			t.Fatalf("origin %q allowed, normalized %q %v", o, n, err)
		}
	})
}
