package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The browser client (public/keyflux.js) and its types are served at the
// root for any page to import, on any origin: cacheable for a few minutes
// and then revalidated with a strong ETag (a hash of the file), so a
// release reaches pages at once and an unchanged file costs a 304. The
// files are embedded, so the hash is computed once, at start.

// moduleMaxAge is how long (seconds) a browser may use keyflux.js without
// asking again.
const moduleMaxAge = "300"

var moduleFiles = map[string]string{
	"keyflux.js":   "text/javascript; charset=utf-8",
	"keyflux.d.ts": "text/plain; charset=utf-8",
}

// registerModule mounts the browser client's files of public, when it has
// them. It must come before the dashboard's catch-all file server.
func registerModule(app *fiber.App, public fs.FS) {
	for name, ctype := range moduleFiles {
		body, err := fs.ReadFile(public, name)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(body)
		etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
		app.Get("/"+name, func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderCacheControl, "public, max-age="+moduleMaxAge)
			c.Set(fiber.HeaderETag, etag)
			c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
			// A module is fetched in CORS mode from other origins; it holds
			// no data, only code, so any page may load it.
			c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
			if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
				return c.SendStatus(fiber.StatusNotModified)
			}
			c.Set(fiber.HeaderContentType, ctype)
			return c.Send(body)
		})
	}
}

// etagMatches reports whether an If-None-Match header names etag: "*", or
// one of its comma-separated tags, compared weakly as RFC 9110 says.
func etagMatches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}
