package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/keyflux/keyflux/handlers/limit"
)

// A request head must arrive within headerTimeout, so that connections
// that never finish one (slowloris) give their descriptor back soon; its
// body then has bodyTimeout. A variable for tests.
var headerTimeout = 10 * time.Second

const bodyTimeout = 30 * time.Second

// bodyTime gives a request whose head has arrived the time to send its body.
func bodyTime(*fasthttp.RequestHeader) fasthttp.RequestConfig {
	return fasthttp.RequestConfig{ReadTimeout: bodyTimeout}
}

// streamLimits is the gate every new stream passes and how many connections
// that are not streams may be open (past it, 503). Streams and those
// connections together stay under the open-file limit, with a reserve for
// Redis and the rest.
func streamLimits(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*limit.Gate, int) {
	requests := 0 // no cap
	maxClients := cfg.MaxClients
	if n, err := limit.FileLimit(); err != nil {
		logger.Warn("open-file limit unknown: streams are not capped unless --max-clients is set", "err", err)
	} else {
		fds := limit.PlanDescriptors(n)
		requests = fds.Requests
		if maxClients == 0 {
			maxClients = fds.Streams
		} else if maxClients > fds.Streams {
			logger.Warn("--max-clients leaves no descriptors in reserve: near it new connections wait, /healthz included",
				"max-clients", maxClients, "open-file-limit", n, "suggested", fds.Streams)
		}
	}
	logger.Debug("stream limits", "max-clients", maxClients, "max-requests", requests)
	return limit.NewGate(limit.Options{
		MaxClients:        maxClients,
		MaxClientsPerAddr: cfg.MaxClientsPerIP,
		RatePerAddr:       cfg.StreamRatePerIP,
		BurstPerAddr:      cfg.StreamBurstPerIP,
		TrustedProxies:    cfg.TrustedProxies,
		Registerer:        reg,
	}), requests
}
