package api

import (
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// What a browser is told in a preflight: the methods the routes use, the request headers they
// read, and how long (seconds) it may reuse the answer.
const (
	corsMethods = "GET,HEAD,POST,PUT,PATCH,DELETE"
	corsHeaders = "Authorization,Content-Type"
	corsMaxAge  = 600
)

// cors answers the CORS protocol per Config.Origins. A request from an allowed origin gets
// Access-Control-Allow-Origin on every answer, errors included: "*" when any origin is allowed,
// the origin itself (with Vary: Origin) when a list is set; its preflight (OPTIONS with
// Access-Control-Request-Method) gets 204 with corsMethods and corsHeaders. A request from any
// other origin gets no CORS header, so the browser keeps the answer from the page: its preflight
// gets 403 origin_not_allowed, its other requests are served as if they had no Origin (a
// non-browser client could send any Origin; bearer tokens, not the Origin, authorize). Never
// Access-Control-Allow-Credentials: the API reads no cookies.
func (s *Server) cors() fiber.Handler {
	cfg := cors.Config{AllowMethods: corsMethods, AllowHeaders: corsHeaders, MaxAge: corsMaxAge}
	if s.cfg.Origins.AllowsAny() {
		cfg.AllowOrigins = "*"
	} else {
		cfg.AllowOriginsFunc = s.cfg.Origins.Allows
	}
	allowed := cors.New(cfg)
	return func(c *fiber.Ctx) error {
		o := c.Get(fiber.HeaderOrigin)
		if o == "" || s.cfg.Origins.Allows(o) {
			return allowed(c)
		}
		c.Vary(fiber.HeaderOrigin)
		if c.Method() == fiber.MethodOptions && c.Get(fiber.HeaderAccessControlRequestMethod) != "" {
			return errorf(http.StatusForbidden, CodeOriginNotAllowed,
				"origin %q may not call this API: it is not in this server's --allowed-origins", o)
		}
		return c.Next()
	}
}
