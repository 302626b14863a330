package main

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyflux/keyflux/handlers"
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
	app    *fiber.App
	ln     net.Listener
	// stopDemo ends the --demo writer; nil without --demo.
	stopDemo func()
}

// newServer connects to Redis and wires its sources, the hub and the sink
// to the HTTP routes. It listens but does not serve yet.
func newServer(ctx context.Context, cfg Config, logger *slog.Logger) (*server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rc, err := redis.Open(ctx, redis.Options{
		URL: cfg.RedisURL, KeyspaceConfig: cfg.KeyspaceConfig,
		Broadcast: cfg.Tracking == "bcast", Prefixes: cfg.Expose, CacheBytes: cfg.CacheBytes,
		ValueMaxBytes: cfg.ValueMaxBytes, APICache: cfg.APICache,
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
		ReplaySize: cfg.ReplaySize, Linger: cfg.Linger, Metrics: hubMetrics, Logger: logger,
	})
	sink := sse.NewSink(sse.SinkOptions{
		Heartbeat: cfg.Heartbeat, Retry: cfg.Retry, WriteTimeout: cfg.WriteTimeout,
		QueueBytes: cfg.QueueBytes, AllowOrigin: cfg.AllowOrigin,
		Metrics: sse.NewMetrics(reg), Logger: logger,
	})

	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler:          handlers.ErrorHandler,
		Immutable:             true,
		ReduceMemoryUsage:     true,
		ReadTimeout:           30 * time.Second, // requests only: streams are handed over
		IdleTimeout:           2 * time.Minute,
	})
	// Streams are taken over from fasthttp once validated; the sink closes them.
	app.Server().KeepHijackedConns = true
	app.Use(recover.New())
	routes := handlers.Config{
		Hub:             hub,
		Keyspace:        rc.Keyspace,
		Channels:        rc.Channels,
		StreamLogs:      rc.StreamLogs,
		Values:          rc.Values,
		MaxWatchKeys:    cfg.WatchMaxKeys,
		Sink:            sink,
		Expose:          cfg.Expose,
		ExposeChannels:  cfg.ExposeChannels,
		PublishToken:    cfg.PublishToken,
		PublishMaxBytes: cfg.PublishMax,
		AllowOrigin:     cfg.AllowOrigin,
		DefaultDB:       rc.DB,
		Ready:           rc.Ping,
		Metrics:         promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Public:          public.Files,
	}
	if rc.KeyWatches != nil { // a nil pointer would make a non-nil interface
		routes.KeyWatches = rc.KeyWatches
	}
	handlers.Register(app, routes)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		hub.Close()
		rc.Close()
		return nil, err
	}
	s := &server{logger: logger, redis: rc, hub: hub, sink: sink, app: app, ln: ln}
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
	s.hub.Close()
	s.redis.Close()
}
