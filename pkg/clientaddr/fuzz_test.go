package clientaddr

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzKey: whatever X-Forwarded-For a trusted proxy passes on, a request is counted against the
// proxy or against an address written in the header, never against something else, and a
// malformed header never panics.
func FuzzKey(f *testing.F) {
	for _, xff := range []string{"", "203.0.113.1", "6.6.6.6, 203.0.113.1, 192.0.2.1", "203.0.113.1, garbage",
		"2001:db8:aa:bb:1:2:3:4", "::ffff:203.0.113.1", ",,,", "fe80::1%eth0", " 10.0.0.1 ,\t10.0.0.2"} {
		f.Add(xff, "")
	}
	f.Add("6.6.6.6", "203.0.113.1")
	proxies, err := ParseCIDRs("10.0.0.0/8, 192.0.2.1/32")
	if err != nil {
		f.Fatal(err)
	}
	peer := netip.MustParseAddr("10.1.2.3")
	f.Fuzz(func(t *testing.T, first, second string) {
		lines := []string{first}
		if second != "" {
			lines = append(lines, second)
		}
		got := Key(peer, lines, proxies)
		if got == peer.String() {
			return
		}
		var addr netip.Addr
		if p, err := netip.ParsePrefix(got); err == nil {
			addr = p.Addr()
		} else if addr, err = netip.ParseAddr(got); err != nil {
			t.Fatalf("X-Forwarded-For %q: client %q is no address", lines, got)
		}
		for _, hop := range strings.Split(strings.Join(lines, ","), ",") {
			if h, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil {
				h = h.Unmap()
				if h == addr || (h.Is6() && netip.PrefixFrom(h, 64).Masked().Addr() == addr) {
					return
				}
			}
		}
		t.Fatalf("X-Forwarded-For %q: client %q is not in the header", lines, got)
	})
}
