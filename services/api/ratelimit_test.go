package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// fakeClock is a settable clock for the rate limits.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// answer is one response: status, Retry-After, error code (if any) and body.
type answer struct {
	status     int
	retryAfter string
	code       protocol.Code
	body       []byte
}

// from sends a JSON request as if from client address addr: the test server trusts 127.0.0.1
// as a proxy, so X-Forwarded-For names the client. The header comes in two lines, as a proxy
// that adds a line of its own (HAProxy's "option forwardfor") passes it on: the first line is
// the client's say-so, the last the proxy's.
func (e *env) from(t *testing.T, addr, method, path, token string, body any) answer {
	t.Helper()
	a, err := e.tryFrom(addr, method, path, token, body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tryFrom is from for goroutines other than the test's: it returns its error.
func (e *env) tryFrom(addr, method, path, token string, body any) (answer, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return answer{}, err
	}
	req, err := http.NewRequest(method, e.base+path, bytes.NewReader(raw))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("X-Forwarded-For", "203.0.113.99")
	req.Header.Add("X-Forwarded-For", addr)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		return answer{}, err
	}
	var eb errorBody
	if json.Unmarshal(a.body, &eb) == nil {
		a.code = eb.Error.Code
	}
	return a, nil
}

// wantLimited requires a 429 rate_limited answer whose Retry-After is a whole number of seconds
// ≥ 1 (and exactly want, if want > 0).
func wantLimited(t *testing.T, what string, a answer, want int) {
	t.Helper()
	wantLimitedWithin(t, what, a, want, want)
}

// wantLimitedWithin is wantLimited for a limit on the real clock: a token bucket refills
// continuously, so Retry-After is want less the seconds that passed since the last allowed
// request (up to half of want on a loaded machine: seconds at load 26).
func wantLimitedWithin(t *testing.T, what string, a answer, lo, hi int) {
	t.Helper()
	secs, err := strconv.Atoi(a.retryAfter)
	if a.status != http.StatusTooManyRequests || a.code != CodeRateLimited || err != nil || secs < 1 || secs < lo || secs > hi {
		t.Fatalf("%s: %d Retry-After %q %s, want 429 rate_limited with Retry-After in %d..%d", what, a.status, a.retryAfter, a.body, lo, hi)
	}
}

func trustLoopback(c *Config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
}

// rejected is natter_api_rejected_total{reason}.
func (e *env) rejected(t *testing.T, reason string) float64 {
	t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "natter_api_rejected_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestSignupFloodFromOneAddressIsLimited(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *Config) {
		trustLoopback(c)
		c.Limits.SignupAddr = Rate{N: 3, Per: time.Hour}
	}, nil)
	signup := func(addr, handle string) answer {
		return e.from(t, addr, "POST", "/v1/signup", "", map[string]string{"handle": handle, "password": "s3cret-pass"})
	}
	for i := range 3 {
		if a := signup("198.51.100.1", "flood_"+strconv.Itoa(i)); a.status != http.StatusCreated {
			t.Fatalf("sign-up %d within the limit: %d %s", i, a.status, a.body)
		}
	}
	for i := 3; i < 10; i++ {
		// One sign-up per 20 minutes refills: the next is 20 minutes (1200 s) away.
		wantLimitedWithin(t, "sign-up over the limit", signup("198.51.100.1", "flood_"+strconv.Itoa(i)), 600, 1200)
	}
	if a := signup("198.51.100.2", "other_addr"); a.status != http.StatusCreated {
		t.Fatalf("sign-up from another address: %d %s", a.status, a.body)
	}
	if a := signup("2001:db8:1:2::7", "v6_first"); a.status != http.StatusCreated {
		t.Fatalf("sign-up from an IPv6 address: %d %s", a.status, a.body)
	}
	if got := e.rejected(t, reasonSignupAddr); got != 7 {
		t.Fatalf("rejected_total{signup_addr} = %v, want 7", got)
	}
}

func TestLoginFailuresSlowOneHandleOnly(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnvWith(t, func(c *Config) {
		c.Limits.LoginFailures = 3
		c.Limits.FailureWindow = time.Minute
	}, clock.Now)
	e.user(t, "victim")
	e.user(t, "bystander")
	login := func(handle, password string) answer {
		return e.from(t, "198.51.100.1", "POST", "/v1/login", "", map[string]string{"handle": handle, "password": password})
	}
	for i := range 3 {
		if a := login("victim", "wrong horse"); a.status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d %s, want 401", i, a.status, a.body)
		}
	}
	clock.Add(20 * time.Second)
	wantLimited(t, "wrong password past the failure limit", login("victim", "wrong horse"), 40)
	wantLimited(t, "right password within the failure window", login("VICTIM", "correct horse"), 40)
	// A handle with no account is limited alike: a 429 does not tell that an account exists.
	for range 3 {
		login("nobody_here", "wrong horse")
	}
	wantLimited(t, "a handle with no account", login("nobody_here", "wrong horse"), 60) // its window began now

	if a := login("bystander", "correct horse"); a.status != http.StatusOK {
		t.Fatalf("another handle: %d %s", a.status, a.body)
	}
	clock.Add(40 * time.Second) // the window has passed
	if a := login("victim", "correct horse"); a.status != http.StatusOK {
		t.Fatalf("right password after the window: %d %s", a.status, a.body)
	}
	// The success cleared the count: three more failures are allowed again.
	for i := range 3 {
		if a := login("victim", "wrong horse"); a.status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d after a success: %d %s, want 401", i, a.status, a.body)
		}
	}
	if got := e.rejected(t, reasonLoginFailures); got != 3 {
		t.Fatalf("rejected_total{login_failures} = %v, want 3", got)
	}
}

func TestWritesAreLimitedPerAccountAndAddress(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *Config) {
		trustLoopback(c)
		c.Limits.WriteAccount = Rate{N: 2, Per: time.Minute}
		c.Limits.WriteAddr = Rate{N: 4, Per: time.Minute}
	}, nil)
	_, alice := e.user(t, "alice")
	_, bob := e.user(t, "bob")
	_, carol := e.user(t, "carol")
	rename := map[string]string{"display_name": "Renamed"}
	for i := range 2 {
		if a := e.from(t, "198.51.100.1", "PATCH", "/v1/me", alice, rename); a.status != http.StatusOK {
			t.Fatalf("write %d within the account limit: %d %s", i, a.status, a.body)
		}
	}
	// Alice's third write in the minute, from another address: the account limit holds.
	wantLimitedWithin(t, "write over the account limit", e.from(t, "198.51.100.9", "PATCH", "/v1/me", alice, rename), 15, 30)
	if a := e.from(t, "198.51.100.1", "GET", "/v1/me", alice, nil); a.status != http.StatusOK {
		t.Fatalf("a read past the write limit: %d %s", a.status, a.body)
	}
	// Bob and Carol share 198.51.100.1 with Alice's two writes: two more, then the address limit.
	for _, tok := range []string{bob, carol} {
		if a := e.from(t, "198.51.100.1", "PATCH", "/v1/me", tok, rename); a.status != http.StatusOK {
			t.Fatalf("another account's write: %d %s", a.status, a.body)
		}
	}
	wantLimitedWithin(t, "write over the address limit", e.from(t, "198.51.100.1", "PATCH", "/v1/me", bob, rename), 8, 15)
	if a := e.from(t, "198.51.100.2", "PATCH", "/v1/me", bob, rename); a.status != http.StatusOK {
		t.Fatalf("the same account from another address: %d %s", a.status, a.body)
	}
	if e.rejected(t, reasonWriteAccount) != 1 || e.rejected(t, reasonWriteAddr) != 1 {
		t.Fatalf("rejected_total: write_account %v, write_addr %v, want 1 and 1",
			e.rejected(t, reasonWriteAccount), e.rejected(t, reasonWriteAddr))
	}
}

func TestHashingBusyIsRefusedWithRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *Config) {
		c.HashConcurrency = 1
		c.HashWait = time.Millisecond
	}, nil)
	e.user(t, "alice")
	release, err := e.srv.hasher.Acquire(testContext(t)) // the one slot, held
	if err != nil {
		t.Fatal(err)
	}
	a := e.from(t, "198.51.100.1", "POST", "/v1/login", "", map[string]string{"handle": "alice", "password": "correct horse"})
	release()
	if a.status != http.StatusServiceUnavailable || a.code != protocol.CodeUnavailable || a.retryAfter != "1" {
		t.Fatalf("login with every hashing slot held: %d Retry-After %q %s, want 503 unavailable, Retry-After 1", a.status, a.retryAfter, a.body)
	}
	if got := e.rejected(t, reasonHashBusy); got != 1 {
		t.Fatalf("rejected_total{hash_busy} = %v, want 1", got)
	}
	// The refused attempt did not count as a failed login, and a slot is free again.
	e.call(t, "POST", "/v1/login", "", map[string]string{"handle": "alice", "password": "correct horse"}, http.StatusOK, nil)
}

// flood sends n requests at once, each made by req(i), and counts the answers by status; any
// answer but 429 rate_limited with a Retry-After, or one of the statuses in ok, fails the test.
func flood(t *testing.T, n int, req func(i int) (answer, error), ok ...int) map[int]int {
	t.Helper()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		counts  = map[int]int{}
		failure error
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			a, err := req(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failure = err
			case a.status == http.StatusTooManyRequests && (a.code != CodeRateLimited || a.retryAfter == ""):
				failure = fmt.Errorf("429 without rate_limited and Retry-After: %q %s", a.retryAfter, a.body)
			case a.status != http.StatusTooManyRequests && !slices.Contains(ok, a.status):
				failure = fmt.Errorf("answer %d %s", a.status, a.body)
			}
			counts[a.status]++
		})
	}
	close(start)
	wg.Wait()
	if failure != nil {
		t.Fatal(failure)
	}
	return counts
}

// TestLimitsHoldUnderAFlood: requests sent all at once get exactly what the limits allow, no
// more: sign-ups per address, failed logins per handle (an attempt counts when it starts, so
// parallel guesses do not get past the limit), writes per account; and the server keeps
// answering other clients meanwhile.
func TestLimitsHoldUnderAFlood(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *Config) {
		trustLoopback(c)
		c.Limits.SignupAddr = Rate{N: 5, Per: time.Hour}
		c.Limits.LoginFailures = 3
		c.Limits.WriteAccount = Rate{N: 4, Per: time.Hour}
	}, nil)
	_, alice := e.user(t, "alice")

	got := flood(t, 40, func(i int) (answer, error) {
		return e.tryFrom("198.51.100.1", "POST", "/v1/signup", "", map[string]string{"handle": "flood_" + strconv.Itoa(i), "password": "s3cret-pass"})
	}, http.StatusCreated)
	if got[http.StatusCreated] != 5 || got[http.StatusTooManyRequests] != 35 {
		t.Errorf("40 sign-ups at once from one address: %v, want 5 created and 35 refused", got)
	}
	// Guesses at a handle with no account cost the same bcrypt work and count the same.
	got = flood(t, 30, func(i int) (answer, error) {
		return e.tryFrom("198.51.100."+strconv.Itoa(2+i), "POST", "/v1/login", "", map[string]string{"handle": "nobody_here", "password": "guess " + strconv.Itoa(i)})
	}, http.StatusUnauthorized)
	if got[http.StatusUnauthorized] != 3 || got[http.StatusTooManyRequests] != 27 {
		t.Errorf("30 guesses at once at one handle: %v, want 3 checked and 27 refused", got)
	}
	got = flood(t, 30, func(i int) (answer, error) {
		return e.tryFrom("198.51.100."+strconv.Itoa(100+i), "PATCH", "/v1/me", alice, map[string]string{"display_name": "A" + strconv.Itoa(i)})
	}, http.StatusOK)
	if got[http.StatusOK] != 4 || got[http.StatusTooManyRequests] != 26 {
		t.Errorf("30 writes at once by one account: %v, want 4 done and 26 refused", got)
	}
	if a := e.from(t, "198.51.100.250", "GET", "/v1/me", alice, nil); a.status != http.StatusOK {
		t.Errorf("a read after the floods: %d %s", a.status, a.body)
	}
	if a := e.from(t, "198.51.100.251", "POST", "/v1/signup", "", map[string]string{"handle": "bystander", "password": "s3cret-pass"}); a.status != http.StatusCreated {
		t.Errorf("a sign-up from another address after the flood: %d %s", a.status, a.body)
	}
}
