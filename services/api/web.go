package api

import (
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/natter-chat/natter/services/web"
)

// webPage: GET / -> the web client (services/web), served from this origin so that its calls to
// the API are same-origin. It finds the gateway through GET /v1/discovery.
func (s *Server) webPage(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentSecurityPolicy, web.ContentSecurityPolicy)
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	return serveFile(c, web.Files[web.Index])
}

// webAsset: GET /assets/:name -> one of the page's files; 404 not_found for any other name.
func (s *Server) webAsset(c *fiber.Ctx) error {
	name := c.Params("name")
	f, ok := web.Files[name]
	if !ok || name == web.Index {
		return errorf(http.StatusNotFound, CodeNotFound, "no such file")
	}
	return serveFile(c, f)
}

// serveFile answers with f, or 304 when the request's If-None-Match names f's ETag. Every file
// is revalidated on each use (no-cache): a new binary serves new files at the same URLs, and the
// ETag makes an unchanged file cost one small answer.
func serveFile(c *fiber.Ctx, f web.File) error {
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderETag, f.ETag)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), f.ETag) {
		c.Status(http.StatusNotModified)
		return nil
	}
	c.Set(fiber.HeaderContentType, f.ContentType)
	return c.Send(f.Body)
}

// etagMatches reports whether an If-None-Match value (a list of entity tags, or "*") names etag;
// weak tags (W/"...") match their strong form, as RFC 9110 asks for If-None-Match.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
