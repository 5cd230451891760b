package push

import (
	"net/http"
	"testing"
)

// FuzzRetryAfter: a Retry-After header from FCM, however broken or hostile, gives a wait
// between 0 and maxRetryAfter.
func FuzzRetryAfter(f *testing.F) {
	for _, v := range []string{"", "0", "30", "-5", "9223372036854775807", "99999999999", "Wed, 21 Oct 2015 07:28:00 GMT",
		"Fri, 31 Dec 9999 23:59:59 GMT", " 12 ", "1e3", "NaN"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set("Retry-After", v)
		if d := retryAfter(h); d < 0 || d > maxRetryAfter {
			t.Fatalf("Retry-After %q: wait %s, want 0..%s", v, d, maxRetryAfter)
		}
	})
}
