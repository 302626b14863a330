package handlers

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
)

// Admin is the app of --admin-listen: /metrics and Go's profiles
// (/debug/pprof/) on an address of its own, so that they need not be public. It speaks the same strict HTTP and JSON
// errors as the main listener.
func Admin(metrics http.Handler) *fiber.App {
	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler:          ErrorHandler,
		ReadTimeout:           10 * time.Second,
		IdleTimeout:           2 * time.Minute,
	})
	Guard(app)
	app.Get("/metrics", adaptor.HTTPHandler(metrics))
	// Go's profiles, for finding where the CPU of a load goes
	// (docs/performance.md); only here, never on the public listener.
	profiles := http.NewServeMux()
	profiles.HandleFunc("/debug/pprof/", pprof.Index)
	profiles.HandleFunc("/debug/pprof/profile", pprof.Profile)
	profiles.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	app.Get("/debug/pprof/*", adaptor.HTTPHandler(profiles))
	return app
}
