// Package origin is natter's browser-origin policy (--allowed-origins): the gateway refuses a
// WebSocket upgrade from an origin it does not allow, and the API answers CORS only for the
// origins it allows. One Policy drives both.
package origin

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Any is the list that allows every origin.
const Any = "*"

// Policy says which browser origins may use natter. The zero value allows any origin.
type Policy struct {
	origins []string // normalized (see normalize), sorted, unique; nil: any origin
}

// Parse reads a comma-separated list of origins (scheme://host[:port], as browsers send them in
// the Origin header) or "*" for any origin. Spaces around entries are ignored, and so is case;
// a default port (80 for http, 443 for https) may be written or left out.
func Parse(list string) (Policy, error) {
	var origins []string
	anyOrigin := false
	for _, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		switch entry {
		case "":
			continue
		case Any:
			anyOrigin = true
			continue
		}
		o, err := normalize(entry)
		if err != nil {
			return Policy{}, err
		}
		origins = append(origins, o)
	}
	switch {
	case anyOrigin && len(origins) > 0:
		return Policy{}, fmt.Errorf("%q: %s allows any origin; it cannot be listed with others", list, Any)
	case anyOrigin:
		return Policy{}, nil
	case len(origins) == 0:
		return Policy{}, fmt.Errorf("%q: no origin given; %s allows any", list, Any)
	}
	slices.Sort(origins)
	return Policy{origins: slices.Compact(origins)}, nil
}

// AllowsAny reports whether every origin is allowed.
func (p Policy) AllowsAny() bool { return p.origins == nil }

// Allows reports whether a request with this Origin header value may proceed. An origin that is
// not scheme://host[:port] (such as "null", sent by sandboxed pages and local files) is allowed
// only when every origin is.
func (p Policy) Allows(origin string) bool {
	if p.AllowsAny() {
		return true
	}
	o, err := normalize(origin)
	if err != nil {
		return false
	}
	_, found := slices.BinarySearch(p.origins, o)
	return found
}

// Origins are the allowed origins, normalized; nil when any origin is allowed.
func (p Policy) Origins() []string { return slices.Clone(p.origins) }

// String is the policy as Parse reads it: "*" or the normalized origins.
func (p Policy) String() string {
	if p.AllowsAny() {
		return Any
	}
	return strings.Join(p.origins, ",")
}

// scheme is RFC 3986's scheme syntax.
var scheme = regexp.MustCompile(`^[a-z][a-z0-9+.-]*$`)

// defaultPorts are the ports browsers leave out of an origin.
var defaultPorts = map[string]string{"http": "80", "https": "443"}

// normalize returns origin as a browser serializes it: lower-case scheme and host, no default
// port. Anything with more than scheme://host[:port] is an error.
func normalize(origin string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil {
		return "", fmt.Errorf("origin %q: %w", origin, err)
	}
	if u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], without a path, query or user", origin)
	}
	s := strings.ToLower(u.Scheme)
	if !scheme.MatchString(s) || u.Hostname() == "" {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], such as https://chat.example.com", origin)
	}
	if strings.Contains(u.Host, "*") {
		return "", fmt.Errorf("origin %q: wildcards are not supported; list each origin, or give %s alone", origin, Any)
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); port != "" && port == defaultPorts[s] {
		host = strings.TrimSuffix(host, ":"+port)
	}
	return s + "://" + host, nil
}
