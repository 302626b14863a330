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
	logs  *streams.Logs
	app   *fiber.App
	ln    net.Listener
	// keys and tracking are the key watches (keys is nil without caching).
	keys     *streams.Keys
	tracking *streams.Tracking
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
	if len(cfg.ExposeChannels) == 0 {
		log.Warn("every pub/sub channel is exposed to stream clients; limit them with --expose-channels prefix1,prefix2")
	}
	tracking := &streams.Tracking{}
	err = rc.openCache(cacheOptions{
		Broadcast: cfg.Tracking == "bcast", Prefixes: cfg.Expose, Bytes: cfg.CacheBytes,
		OnInvalidations: tracking.OnInvalidations,
	}, log)
	if err != nil {
		rc.close()
		return nil, err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	hubMetrics := streams.NewMetrics(reg)
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyflux_invalidations_total",
			Help: "Client-side caching invalidations received from Redis (keys; a flush or reconnect counts one).",
		}, func() float64 { return float64(tracking.Received()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyflux_watched_keys",
			Help: "Keys with a live watch (one upstream each, however many clients).",
		}, func() float64 { return float64(tracking.Watched()) }),
	)
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
	// One Upstreams for every pub/sub source on the pub/sub client: one
	// SUBSCRIBE per channel or pattern, however many streams need it.
	upstreams := &streams.Upstreams{Client: rc.client, Logger: log, Metrics: hubMetrics}
	logs := &streams.Logs{Client: rc.client, Logger: log}
	// Reads from Redis itself: keyspace events with values=true, and
	// /api/keys without the cache.
	fresh := &streams.Values{Client: rc.client, MaxBytes: cfg.ValueMaxBytes, Reads: hubMetrics.KeyReads}
	var keys *streams.Keys
	apiValues := fresh
	if rc.cache != nil {
		cached := &streams.Values{Client: rc.cache, Cached: true, MaxBytes: cfg.ValueMaxBytes, Reads: hubMetrics.KeyReads}
		keys = &streams.Keys{
			Values: cached, Tracking: tracking,
			// Key watches' own keyspace subscriptions ride the caching
			// connection, so a deletion's reason arrives where its
			// invalidation does.
			Upstreams: &streams.Upstreams{Client: rc.cache, Logger: log, Metrics: hubMetrics},
			Notify:    notify, DB: rc.db, Logger: log,
		}
		if cfg.APICache {
			apiValues = cached
		}
	}
	handlers.Register(app, handlers.Config{
		Hub:             hub,
		Keyspace:        &streams.Keyspace{Upstreams: upstreams, Notify: notify, Metrics: hubMetrics, Values: fresh},
		Channels:        &streams.Channels{Upstreams: upstreams, Metrics: hubMetrics},
		Logs:            logs,
		Keys:            keys,
		Values:          apiValues,
		MaxWatchKeys:    cfg.WatchMaxKeys,
		Sink:            sink,
		Expose:          cfg.Expose,
		ExposeChannels:  cfg.ExposeChannels,
		PublishToken:    cfg.PublishToken,
		PublishMaxBytes: cfg.PublishMax,
		AllowOrigin:     cfg.AllowOrigin,
		DefaultDB:       rc.db,
		Ready:           rc.ping,
		Metrics:         promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Public:          public.Files,
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		hub.Close()
		rc.close()
		return nil, err
	}
	s := &server{log: log, redis: rc, hub: hub, sink: sink, logs: logs, app: app, ln: ln, keys: keys, tracking: tracking}
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
