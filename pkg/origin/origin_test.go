package origin

import (
	"strings"
	"testing"
)

func TestParseNormalizes(t *testing.T) {
	for list, want := range map[string]string{
		"*":                             "*",
		" * ":                           "*",
		"https://chat.example.com":      "https://chat.example.com",
		"HTTPS://Chat.Example.COM:443/": "https://chat.example.com",
		"http://localhost:80, http://localhost:3000":            "http://localhost,http://localhost:3000",
		"https://b.example.com,https://a.example.com,":          "https://a.example.com,https://b.example.com",
		"https://a.example.com,https://A.example.com":           "https://a.example.com",
		"http://[::1]:8443,chrome-extension://abcdefghijklmnop": "chrome-extension://abcdefghijklmnop,http://[::1]:8443",
	} {
		p, err := Parse(list)
		if err != nil {
			t.Errorf("Parse(%q): %v", list, err)
			continue
		}
		if p.String() != want {
			t.Errorf("Parse(%q) = %q, want %q", list, p.String(), want)
		}
		if p.AllowsAny() != (want == Any) {
			t.Errorf("Parse(%q).AllowsAny() = %v", list, p.AllowsAny())
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for list, wantErr := range map[string]string{
		"":                                "no origin given",
		" , ":                             "no origin given",
		"*,https://chat.example.com":      "cannot be listed with others",
		"chat.example.com":                "want scheme://host[:port]",
		"https://chat.example.com/app":    "without a path",
		"https://chat.example.com?x=1":    "without a path",
		"https://user@chat.example.com":   "without a path",
		"https://*.example.com":           "wildcards are not supported",
		"https://chat.example.com:port":   "invalid port",
		"null":                            "want scheme://host[:port]",
		"https://":                        "want scheme://host[:port]",
		"https://ok.example.com,ftp:/bad": "want scheme://host[:port]",
	} {
		_, err := Parse(list)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", list, err, wantErr)
		}
	}
}

func TestAllows(t *testing.T) {
	var zero Policy
	listed, err := Parse("https://chat.example.com,http://localhost:3000")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		origin      string
		zero, listd bool
	}{
		{"https://chat.example.com", true, true},
		{"https://chat.example.com:443", true, true},
		{"https://CHAT.example.com", true, true},
		{"http://localhost:3000", true, true},
		{"http://chat.example.com", true, false}, // another scheme is another origin
		{"https://chat.example.com:8443", true, false},
		{"https://evil.example.com", true, false},
		{"http://localhost", true, false},
		{"null", true, false},
		{"not an origin", true, false},
	} {
		if got := zero.Allows(tc.origin); got != tc.zero {
			t.Errorf("zero policy Allows(%q) = %v", tc.origin, got)
		}
		if got := listed.Allows(tc.origin); got != tc.listd {
			t.Errorf("%s Allows(%q) = %v, want %v", listed, tc.origin, got, tc.listd)
		}
	}
	if !zero.AllowsAny() || zero.String() != Any || zero.Origins() != nil {
		t.Errorf("zero policy: any %v, %q, %v; want any", zero.AllowsAny(), zero, zero.Origins())
	}
}
