// Package handlers is Keyflux's HTTP face: Fiber handlers, JSON errors and
// the SSE sink that writes frames to connections. It speaks no Redis: streams
// come from the streams package.
package handlers

import (
	"context"
	"io/fs"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/keyflux/keyflux/streams"
)

// Config is what the handlers need from the application.
type Config struct {
	Hub      *streams.Hub
	Keyspace *streams.Keyspace
	Sink     *Sink
	// Expose limits which keys clients may watch.
	Expose Expose
	// DefaultDB is the database of the Redis URL.
	DefaultDB int
	// Ready reports whether Redis answers.
	Ready func(ctx context.Context) error
	// Metrics serves /metrics.
	Metrics http.Handler
	// Public is the dashboard's files.
	Public fs.FS
	// ReadKey reads one key of DefaultDB for GET /api/keys/<key>.
	ReadKey func(ctx context.Context, key string) (streams.KeyState, error)
}

// Register mounts every route on app.
func Register(app *fiber.App, cfg Config) {
	h := &handler{cfg: cfg}
	app.Get("/healthz", h.healthz)
	app.Get("/readyz", h.readyz)
	if cfg.Metrics != nil {
		app.Get("/metrics", adaptor.HTTPHandler(cfg.Metrics))
	}
	app.Get("/streams/keyspace", h.keyspace)
	app.Get("/api/keys/*", h.key)
	if cfg.Public != nil {
		app.Use("/", dashboardHeaders, filesystem.New(filesystem.Config{Root: http.FS(cfg.Public), MaxAge: 60}))
	}
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
		return apiError(c, fiber.StatusServiceUnavailable, "redis unreachable: "+err.Error())
	}
	return c.JSON(fiber.Map{"status": "ready"})
}
