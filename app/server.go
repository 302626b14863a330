package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyflux/keyflux/handlers"
	"github.com/keyflux/keyflux/handlers/limit"
	"github.com/keyflux/keyflux/handlers/sse"
	"github.com/keyflux/keyflux/public"
	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/redis"
)

// demoTick paces the --demo writer: at most four commands a tick.
const demoTick = 300 * time.Millisecond

// server is one running Keyflux: Redis, the hub, the sink and HTTP.
type server struct {
	logger *slog.Logger
	redis  *redis.Conn
	hub    *streams.Hub
	sink   *sse.Sink
	gate   *limit.Gate // counts open streams
	app    *fiber.App
	ln     net.Listener
	// admin serves /metrics on --admin-listen; nil without it.
	admin *admin
	// stopDemo ends the --demo writer; nil without --demo.
	stopDemo func()
	// closeAuth stops what the auth mode runs (a JWKS refresher).
	closeAuth func()
}

// newServer connects to Redis and wires its sources, the hub and the sink
// to the HTTP routes. It listens but does not serve yet.
func newServer(ctx context.Context, cfg Config, logger *slog.Logger) (*server, error) {
	origins, err := handlers.ParseOrigins(cfg.AllowOrigins)
	if err != nil {
		return nil, fmt.Errorf("allow-origin: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var journal *redis.JournalOptions
	if cfg.Journal {
		// Lease tokens name the process by host and pid.
		journal = &redis.JournalOptions{MaxLen: cfg.JournalMaxLen, TTL: cfg.JournalTTL, Lease: cfg.JournalLease}
	}
	rc, err := redis.Open(ctx, redis.Options{
		URL: cfg.RedisURL, KeyspaceConfig: cfg.KeyspaceConfig, KeyspaceCheck: cfg.KeyspaceCheck,
		Broadcast: cfg.Tracking == "bcast", Prefixes: cfg.Expose, CacheBytes: cfg.CacheBytes,
		ValueMaxBytes: cfg.ValueMaxBytes, APICache: cfg.APICache, MaxPatterns: cfg.MaxRedisPatterns,
		Cluster: cfg.RedisCluster, TopologyCheck: cfg.TopologyCheck, Journal: journal,
		Registerer: reg, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	if len(cfg.Expose) == 0 {
		logger.Warn("every key is exposed to stream clients; limit them with --expose prefix1,prefix2")
	}
	if len(cfg.ExposeChannels) == 0 {
		logger.Warn("every pub/sub channel is exposed to stream clients; limit them with --expose-channels prefix1,prefix2")
	}
	hubMetrics := streams.NewMetrics(reg)
	hub := streams.NewHub(streams.HubOptions{
		ReplaySize: cfg.ReplaySize, Linger: cfg.Linger, MaxTopics: cfg.MaxTopics,
		Metrics: hubMetrics, Logger: logger,
	})
	sink := sse.NewSink(sse.SinkOptions{
		Heartbeat: cfg.Heartbeat, Retry: cfg.Retry, WriteTimeout: cfg.WriteTimeout,
		QueueBytes: cfg.QueueBytes, MaxQueuedBytes: cfg.MaxQueuedBytes, Coalesce: cfg.Coalesce,
		Metrics: sse.NewMetrics(reg), Logger: logger,
	})
	gate, maxRequests := streamLimits(cfg, reg, logger)
	authn, authCookie, closeAuth, err := authenticator(ctx, cfg, rc, logger)
	if err != nil {
		sink.Close()
		hub.Close()
		rc.Close()
		return nil, err
	}

	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler:          handlers.ErrorHandler,
		Immutable:             true,
		ReduceMemoryUsage:     true,
		ReadTimeout:           headerTimeout, // requests only: streams are handed over
		IdleTimeout:           2 * time.Minute,
	})
	app.Server().HeaderReceived = bodyTime
	// Streams are taken over from fasthttp once validated; the sink closes them.
	app.Server().KeepHijackedConns = true
	handlers.Guard(app) // strict request heads, JSON for fasthttp's own errors
	app.Use(recover.New())
	routes := handlers.Config{
		Hub:             hub,
		Keyspace:        rc.Keyspace,
		Channels:        rc.Channels,
		StreamLogs:      rc.StreamLogs,
		Values:          rc.Values,
		MaxWatchKeys:    cfg.WatchMaxKeys,
		Sink:            sink,
		Limits:          gate,
		Expose:          cfg.Expose,
		ExposeChannels:  cfg.ExposeChannels,
		PublishToken:    cfg.PublishToken,
		PublishMaxBytes: cfg.PublishMax,
		AllowOrigins:    origins,
		AuthCookie:      authCookie,
		DefaultDB:       rc.DB,
		Databases:       rc.Databases,
		ExposeDB:        cfg.ExposeDB,
		Ready:           rc.Ready,
		Metrics:         promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Public:          public.Files,
		Sets:            rc.Sets,
	}
	if authn != nil {
		routes.Auth = authn
	}
	if rc.KeyWatches != nil { // a nil pointer would make a non-nil interface
		routes.KeyWatches = rc.KeyWatches
	}
	metrics := routes.Metrics
	if cfg.AdminListen != "" {
		routes.Metrics = nil // the main listener answers /metrics with 404
	}
	handlers.Register(app, routes)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		closeAuth()
		hub.Close()
		rc.Close()
		return nil, err
	}
	// Waits out a descriptor shortage instead of stopping, and keeps
	// connections that are not streams within the reserve, an eighth of it
	// per client address.
	lim := limit.NewListener(ln, limit.ListenerOptions{
		FirstByte: headerTimeout, MaxRequests: maxRequests, MaxRequestsPerPeer: max(8, maxRequests/8),
		TrustedProxies: cfg.TrustedProxies, Logger: logger,
	})
	app.Server().ConnState = lim.ConnState
	ln = handlers.StrictHeads(lim) // outermost: handlers.Guard finds its connections
	var adm *admin
	if cfg.AdminListen != "" {
		if adm, err = startAdmin(cfg.AdminListen, metrics, logger); err != nil {
			ln.Close()
			closeAuth()
			hub.Close()
			rc.Close()
			return nil, err
		}
	}
	s := &server{logger: logger, redis: rc, hub: hub, sink: sink, gate: gate, app: app, ln: ln, admin: adm, closeAuth: closeAuth}
	if cfg.Demo {
		s.stopDemo = rc.StartDemo(demoTick, logger)
	}
	return s, nil
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) serve() error { return s.app.Listener(s.ln) }

// shutdown stops the demo writer, ends streams (browsers reconnect
// elsewhere and resume), then HTTP, then the topics' Redis subscriptions,
// then Redis itself.
func (s *server) shutdown(timeout time.Duration) {
	if s.stopDemo != nil {
		s.stopDemo()
	}
	s.sink.Close()
	if err := s.app.ShutdownWithTimeout(timeout); err != nil {
		s.logger.Warn("http shutdown", "err", err)
	}
	if s.admin != nil {
		s.admin.shutdown(timeout)
	}
	s.closeAuth()
	s.hub.Close()
	s.redis.Close()
}
