package api

import (
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// What a browser is told in a preflight: the methods the routes use, the request headers they
// read, and how long (seconds) it may reuse the answer.
const (
	corsMethods = "GET,HEAD,POST,PUT,PATCH,DELETE"
	corsHeaders = "Authorization,Content-Type"
	corsMaxAge  = 600
	// corsExpose are the answer headers a page may read beyond the CORS-safelisted ones:
	// Retry-After of 429 and 503 answers.
	corsExpose = "Retry-After"
)

// cors answers the CORS protocol per Config.Origins. A request from an allowed origin gets
// Access-Control-Allow-Origin on every answer, errors included: "*" when any origin is allowed,
// the origin itself (with Vary: Origin) when a list is set; its preflight (OPTIONS with
// Access-Control-Request-Method) gets 204 with corsMethods and corsHeaders. A request from any
// other origin gets no CORS header, so the browser keeps the answer from the page: its preflight
// gets 403 origin_not_allowed, its other requests are served as if they had no Origin (a
// non-browser client could send any Origin; bearer tokens, not the Origin, authorize). Never
// Access-Control-Allow-Credentials: the API reads no cookies. Answers to an allowed origin
// expose corsExpose.
func (s *Server) cors() fiber.Handler {
	cfg := cors.Config{AllowMethods: corsMethods, AllowHeaders: corsHeaders, MaxAge: corsMaxAge, ExposeHeaders: corsExpose}
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

// corsOnServerError gives an answer the cors middleware never saw the headers it would have set
// on it: fiber's ErrorHandler answers what the HTTP server refuses before any route runs (a
// body over BodyLimit, 413), and without them a page of an allowed origin would see an opaque
// network error instead of the coded one. A request whose header was not read (malformed, or
// too large: 431) has no Origin to answer, and no browser sends one.
func (s *Server) corsOnServerError(c *fiber.Ctx) {
	if !s.cfg.Origins.AllowsAny() {
		c.Vary(fiber.HeaderOrigin)
	}
	o := c.Get(fiber.HeaderOrigin)
	if o == "" || !s.cfg.Origins.Allows(o) {
		return
	}
	allow := "*"
	if !s.cfg.Origins.AllowsAny() {
		allow = strings.ToLower(o) // as the middleware echoes it
	}
	c.Set(fiber.HeaderAccessControlAllowOrigin, allow)
	c.Set(fiber.HeaderAccessControlExposeHeaders, corsExpose)
}
