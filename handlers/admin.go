package handlers

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
)

// Admin is the app of --admin-listen: /metrics on an address of its own,
// so that it need not be public. It speaks the same strict HTTP and JSON
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
	return app
}
