package clientaddr

import (
	"net/netip"
	"testing"
)

func TestKey(t *testing.T) {
	t.Parallel()
	proxies, err := ParseCIDRs("10.0.0.0/8, 192.0.2.1/32")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCIDRs("10.0.0.0/8,nonsense"); err == nil {
		t.Fatal("ParseCIDRs accepted nonsense")
	}
	for _, tc := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"198.51.100.7", []string{"203.0.113.1"}, "198.51.100.7"},                  // an untrusted peer: its header is ignored
		{"10.1.2.3", nil, "10.1.2.3"},                                              // a trusted peer with no header
		{"10.1.2.3", []string{"203.0.113.1"}, "203.0.113.1"},                       // one proxy
		{"10.1.2.3", []string{"6.6.6.6, 203.0.113.1, 192.0.2.1"}, "203.0.113.1"},   // a proxy chain; the left-most is the client's say-so
		{"10.1.2.3", []string{"203.0.113.1, garbage"}, "10.1.2.3"},                 // malformed: trust nothing left of it
		{"10.1.2.3", []string{"2001:db8:aa:bb:1:2:3:4"}, "2001:db8:aa:bb::/64"},    // IPv6 counts by /64
		{"2001:db8:1:2::9", []string{"203.0.113.1"}, "2001:db8:1:2::/64"},          // an untrusted IPv6 peer
		{"10.1.2.3", []string{"::ffff:203.0.113.1"}, "203.0.113.1"},                // IPv4-mapped
		{"::ffff:10.1.2.3", []string{"203.0.113.1"}, "203.0.113.1"},                // a mapped peer is trusted as IPv4
		{"10.1.2.3", []string{"6.6.6.6", "203.0.113.1"}, "203.0.113.1"},            // a proxy that adds a line of its own: the client wrote the first
		{"10.1.2.3", []string{"6.6.6.6", "203.0.113.1, 192.0.2.1"}, "203.0.113.1"}, // lines and commas mixed
	} {
		if got := Key(netip.MustParseAddr(tc.peer), tc.xff, proxies); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}
