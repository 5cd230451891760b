package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// checkOrigin answers an upgrade whose Origin Config.Origins does not allow with 403 and reports
// false. Two kinds of request pass whatever the policy: one without an Origin header (native
// apps and servers; only browsers send it, and a non-browser client could send any value) and
// one whose Origin names the host it was sent to (the page came from this gateway's own address,
// or the proxy in front of it: same origin, not cross-origin).
func (g *Gateway) checkOrigin(w http.ResponseWriter, r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || g.cfg.Origins.Allows(o) || sameHost(o, r.Host) {
		return true
	}
	g.log.Info("upgrade refused: origin not allowed", zap.String("origin", o), zap.String("host", r.Host),
		zap.String("remote", r.RemoteAddr))
	httpError(w, http.StatusForbidden, "origin_not_allowed",
		fmt.Sprintf("origin %q may not open a socket here: it is not in this server's --allowed-origins", o))
	return false
}

// sameHost reports whether origin's host[:port] is host, the request's Host header.
func sameHost(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}
