// Package handlers is Keyflux's HTTP face: routes, parameter parsing,
// expose rules and JSON errors. A stream request becomes specs of the
// core's sources, and its connection goes to the SSE sink (handlers/sse).
// It speaks no Redis: the sources are interfaces of the streams package.
package handlers

import (
	"context"
	"io/fs"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/handlers/limit"
	"github.com/keyflux/keyflux/handlers/sse"
	"github.com/keyflux/keyflux/streams"
)

// Config is what the handlers need from the application.
type Config struct {
	Hub        *streams.Hub
	Keyspace   streams.KeyspaceSource
	Channels   streams.ChannelSource
	StreamLogs streams.StreamLogSource
	// KeyWatches watches single keys; nil when Redis cannot do client-side caching.
	KeyWatches streams.KeyWatchSource
	// Values serves GET /api/keys/<key>.
	Values streams.KeyReader
	Sink   *sse.Sink
	// Limits admits new streams and counts them; nil: no limits.
	Limits *limit.Gate
	// MaxWatchKeys is how many keys one /streams/keys request may watch.
	MaxWatchKeys int
	// Expose limits which keys (stream keys too) clients may watch.
	Expose Expose
	// ExposeChannels limits which pub/sub channels clients may relay.
	ExposeChannels Expose
	// PublishToken enables POST /api/channels and /api/log for callers
	// that send it as a Bearer token; empty disables them.
	PublishToken string
	// PublishMaxBytes bounds a published body.
	PublishMaxBytes int
	// DefaultDB is the database of the Redis URL.
	DefaultDB int
	// Databases is how many databases Redis has (0: unknown, not checked).
	Databases int
	// ExposeDB lists the databases clients may stream; nil: DefaultDB only.
	ExposeDB []int
	// AllowOrigins are the origins whose pages may use the API and streams
	// with credentials (CORS); ["*"]: any origin, without credentials.
	AllowOrigins []string
	// Auth finds each request's identity; nil: --auth none.
	Auth auth.Authenticator
	// AuthCookie is the cookie Auth reads, told to pages that must set it.
	AuthCookie string
	// Ready says why streams cannot be served as promised (Redis does not
	// answer, keyspace notifications are off); nil when they can.
	Ready func(ctx context.Context) error
	// Metrics serves /metrics.
	Metrics http.Handler
	// Public is the dashboard's files.
	Public fs.FS
	// Sets keeps named sets of subs (POST /api/sets); nil: none.
	Sets SetStore
}

// Register mounts every route on app.
func Register(app *fiber.App, cfg Config) {
	if cfg.PublishMaxBytes <= 0 {
		cfg.PublishMaxBytes = 64 << 10
	}
	h := &handler{cfg: cfg}
	app.Get("/healthz", h.healthz)
	app.Get("/readyz", h.readyz)
	if cfg.Metrics != nil {
		app.Get("/metrics", adaptor.HTTPHandler(cfg.Metrics))
	}
	useCORS(app, cfg) // before identify: preflights carry no credentials
	// Everything that reads or writes Redis data needs an identity.
	app.Use("/streams", h.identify)
	app.Use("/api", h.identify)
	app.Get("/api/identity", h.apiIdentity)
	streamRoute(app, "/streams", h.combined)
	streamRoute(app, "/streams/keyspace", h.serve(keyspace))
	streamRoute(app, "/streams/keys", h.serve(keyWatch))
	streamRoute(app, "/streams/channels", h.serve(channels))
	streamRoute(app, "/streams/channels/*", h.serve(channels))
	streamRoute(app, "/streams/log/*", h.serve(streamLog))
	app.Get("/api/keys/*", h.apiKey)
	app.Post("/api/channels/*", h.publishChannel)
	app.Post("/api/log/*", h.publishStreamLog)
	app.Post("/api/sets", h.createSet)
	if cfg.Public != nil {
		registerModule(app, cfg.Public)
		app.Use("/", dashboardHeaders, filesystem.New(filesystem.Config{Root: http.FS(cfg.Public), MaxAge: 60}))
	}
}

// streamRoute mounts a stream on GET alone: Fiber's Get also answers HEAD,
// which would subscribe and stream a body nobody reads.
func streamRoute(app *fiber.App, path string, h fiber.Handler) {
	app.Add(fiber.MethodGet, path, h)
	app.Head(path, func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderAllow, fiber.MethodGet)
		return &badRequest{status: fiber.StatusMethodNotAllowed, msg: "streams answer GET only"}
	})
}

// dashboardCSP lets the dashboard load only its own files and talk only to
// its own origin: even if Redis data ever reached the page as HTML, no
// script or image from it would run or load.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func dashboardHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentSecurityPolicy, dashboardCSP)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	return c.Next()
}

type handler struct {
	cfg Config
}

func (h *handler) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (h *handler) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := h.cfg.Ready(ctx); err != nil {
		return apiError(c, fiber.StatusServiceUnavailable, err.Error())
	}
	return c.JSON(fiber.Map{"status": "ready"})
}
