package api

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// FuzzClientAddr: whatever X-Forwarded-For a trusted proxy passes on, the rate limits count the
// request against the proxy or against an address written in the header, never against
// something else, and a malformed header never panics.
func FuzzClientAddr(f *testing.F) {
	for _, xff := range []string{"", "203.0.113.1", "6.6.6.6, 203.0.113.1, 192.0.2.1", "203.0.113.1, garbage",
		"2001:db8:aa:bb:1:2:3:4", "::ffff:203.0.113.1", ",,,", "fe80::1%eth0", " 10.0.0.1 ,\t10.0.0.2"} {
		f.Add(xff)
	}
	proxies, err := ParseCIDRs("10.0.0.0/8, 192.0.2.1/32")
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{cfg: Config{TrustedProxies: proxies}}
	app := fiber.New()
	f.Fuzz(func(t *testing.T, xff string) {
		var rc fasthttp.RequestCtx
		rc.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 40000}, nil)
		rc.Request.Header.Set("X-Forwarded-For", xff)
		c := app.AcquireCtx(&rc)
		defer app.ReleaseCtx(c)
		got := s.clientAddr(c)
		if got == "10.1.2.3" {
			return
		}
		var addr netip.Addr
		if p, err := netip.ParsePrefix(got); err == nil {
			addr = p.Addr()
		} else if addr, err = netip.ParseAddr(got); err != nil {
			t.Fatalf("X-Forwarded-For %q: client %q is no address", xff, got)
		}
		for _, hop := range strings.Split(string(rc.Request.Header.Peek("X-Forwarded-For")), ",") {
			if h, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil {
				h = h.Unmap()
				if h == addr || (h.Is6() && netip.PrefixFrom(h, 64).Masked().Addr() == addr) {
					return
				}
			}
		}
		t.Fatalf("X-Forwarded-For %q: client %q is not in the header", xff, got)
	})
}
