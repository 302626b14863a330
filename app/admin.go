package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/handlers"
)

// admin serves /metrics on --admin-listen, apart from the public listener.
type admin struct {
	app  *fiber.App
	ln   net.Listener
	done chan struct{}
}

// startAdmin listens on addr and serves metrics there at once.
func startAdmin(addr string, metrics http.Handler, logger *slog.Logger) (*admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin-listen: %w", err)
	}
	a := &admin{app: handlers.Admin(metrics), ln: handlers.StrictHeads(ln), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		if err := a.app.Listener(a.ln); err != nil {
			logger.Debug("admin listener stopped", "err", err)
		}
	}()
	logger.Info("metrics on the admin listener", "url", "http://"+ln.Addr().String()+"/metrics")
	return a, nil
}

func (a *admin) addr() string { return a.ln.Addr().String() }

// shutdown stops serving and waits until it has.
func (a *admin) shutdown(timeout time.Duration) {
	_ = a.app.ShutdownWithTimeout(timeout)
	_ = a.ln.Close() // in case Listener had not begun when Shutdown came
	<-a.done
}
