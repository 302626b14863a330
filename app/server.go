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
	"github.com/keyflux/keyflux/public"
	"github.com/keyflux/keyflux/streams"
)

// demoTick paces the --demo writer: at most four commands a tick.
const demoTick = 300 * time.Millisecond

// server is one running Keyflux: Redis, the hub, the sink and HTTP.
type server struct {
	log   *slog.Logger
	redis *redisConn
	hub   *streams.Hub
	sink  *handlers.Sink
	app   *fiber.App
	ln    net.Listener
	// stopDemo ends the --demo writer; nil without --demo.
	stopDemo func()
}

// newServer connects to Redis, checks its keyspace settings and wires the
// streams to the HTTP routes. It listens but does not serve yet.
func newServer(ctx context.Context, cfg Config, log *slog.Logger) (*server, error) {
	rc, err := connectRedis(ctx, cfg.RedisURL, log)
	if err != nil {
		return nil, err
	}
	notify := &streams.NotifyConfig{Client: rc.client, Mode: cfg.KeyspaceConfig, Logger: log}
	if err := checkKeyspace(ctx, notify, rc.db, log); err != nil {
		rc.close()
		return nil, err
	}
	if len(cfg.Expose) == 0 {
		log.Warn("every key is exposed to stream clients; limit them with --expose prefix1,prefix2")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	hubMetrics := streams.NewMetrics(reg)
	hub := streams.NewHub(streams.HubOptions{
		ReplaySize: cfg.ReplaySize, Linger: cfg.Linger, Metrics: hubMetrics, Logger: log,
	})
	sink := handlers.NewSink(handlers.SinkOptions{
		Heartbeat: cfg.Heartbeat, Retry: cfg.Retry, WriteTimeout: cfg.WriteTimeout,
		QueueBytes: cfg.QueueBytes, AllowOrigin: cfg.AllowOrigin,
		Metrics: handlers.NewMetrics(reg), Logger: log,
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
	handlers.Register(app, handlers.Config{
		Hub:       hub,
		Keyspace:  &streams.Keyspace{Upstreams: &streams.Upstreams{Client: rc.client, Logger: log}, Notify: notify, Metrics: hubMetrics},
		Sink:      sink,
		Expose:    cfg.Expose,
		DefaultDB: rc.db,
		Ready:     rc.ping,
		Metrics:   promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Public:    public.Files,
		ReadKey: func(ctx context.Context, key string) (streams.KeyState, error) {
			return streams.ReadKey(ctx, rc.client, key)
		},
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		hub.Close()
		rc.close()
		return nil, err
	}
	s := &server{log: log, redis: rc, hub: hub, sink: sink, app: app, ln: ln}
	if cfg.Demo {
		s.stopDemo = startDemo(rc.client, demoTick, log)
	}
	return s, nil
}

// checkKeyspace applies (auto) or verifies (none) notify-keyspace-events.
func checkKeyspace(ctx context.Context, n *streams.NotifyConfig, db int, log *slog.Logger) error {
	if n.Mode == streams.NotifyAuto {
		return n.Ensure(ctx)
	}
	ok, err := n.Probe(ctx, db, time.Second)
	switch {
	case err != nil:
		log.Warn("keyspace config mode none: could not verify that keyspace notifications are on", "err", err)
	case !ok:
		log.Warn("keyspace config mode none: keyspace notifications look disabled; " +
			"set notify-keyspace-events to include K and A (for example KA) in your Redis settings")
	}
	return nil
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
		s.log.Warn("http shutdown", "err", err)
	}
	s.hub.Close()
	s.redis.close()
}
