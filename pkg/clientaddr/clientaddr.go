// Package clientaddr names the client a request is counted against by per-address limits (the
// API's rate limits, the gateway's upgrade limits): the TCP peer, or, behind trusted reverse
// proxies (--trusted-proxies), the address they wrote in X-Forwarded-For. One function for both
// front doors, so that a client counts as the same key at each.
package clientaddr

import (
	"fmt"
	"net/netip"
	"strings"
)

// HeaderForwardedFor is the header trusted proxies name the client in.
const HeaderForwardedFor = "X-Forwarded-For"

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

// Key is the address a request from peer is counted against. When peer is in trusted, it is the
// right-most X-Forwarded-For entry that is not itself trusted (entries left of it were written
// by the client and prove nothing; a malformed entry stops the walk, trusting nothing left of
// it). forwardedFor are the request's X-Forwarded-For header lines in the order received: a
// proxy may append to the last line or add a line of its own, and either way its entry is the
// right-most of them joined. IPv6 addresses count by their /64, which one client typically holds
// whole; IPv4-mapped IPv6 addresses count as IPv4.
func Key(peer netip.Addr, forwardedFor []string, trusted []netip.Prefix) string {
	addr := peer.Unmap()
	if contains(trusted, addr) {
		hops := strings.Split(strings.Join(forwardedFor, ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // a malformed entry: trust nothing left of it
			}
			addr = hop.Unmap()
			if !contains(trusted, addr) {
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

func contains(prefixes []netip.Prefix, addr netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
