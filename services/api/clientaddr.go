package api

import (
	"net/netip"

	"github.com/gofiber/fiber/v2"

	"github.com/natter-chat/natter/pkg/clientaddr"
)

// clientAddr is the address the rate limits count a request against: clientaddr.Key of its TCP
// peer and X-Forwarded-For lines, with Config.TrustedProxies.
func (s *Server) clientAddr(c *fiber.Ctx) string {
	ip := c.Context().RemoteIP()
	peer, _ := netip.AddrFromSlice(ip)
	var xff []string
	for _, v := range c.Request().Header.PeekAll(clientaddr.HeaderForwardedFor) {
		xff = append(xff, string(v))
	}
	return clientaddr.Key(peer, xff, s.cfg.TrustedProxies)
}
