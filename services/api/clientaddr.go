package api

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// ParseCIDRs reads a comma-separated list of CIDR prefixes ("10.0.0.0/8,::1/128"); an empty
// string is no prefixes.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// clientAddr is the address the rate limits count a request against: the TCP peer, or, when
// the peer is a trusted proxy, the right-most X-Forwarded-For entry that is not a trusted proxy
// (entries left of it were written by the client and prove nothing). IPv6 addresses count by
// their /64, which one client typically holds whole.
func (s *Server) clientAddr(c *fiber.Ctx) string {
	addr := peerAddr(c)
	if s.trusted(addr) {
		hops := strings.Split(string(c.Request().Header.Peek(fiber.HeaderXForwardedFor)), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // a malformed entry: trust nothing left of it
			}
			addr = hop.Unmap()
			if !s.trusted(addr) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64) // cannot fail for an IPv6 address
		return p.String()
	}
	return addr.String()
}

func peerAddr(c *fiber.Ctx) netip.Addr {
	ip := c.Context().RemoteIP()
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

func (s *Server) trusted(addr netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
