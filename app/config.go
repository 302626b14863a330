package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/keyflux/keyflux/handlers"
	"github.com/keyflux/keyflux/streams/redis"
)

// Config is everything Keyflux can be told, by flag or by the matching
// KEYFLUX_* environment variable (--redis-url is KEYFLUX_REDIS_URL).
type Config struct {
	Listen         string
	RedisURL       string
	KeyspaceConfig redis.NotifyMode
	Heartbeat      time.Duration
	Retry          time.Duration
	ReplaySize     int
	Linger         time.Duration
	QueueBytes     int
	WriteTimeout   time.Duration
	Expose         handlers.Expose
	ExposeChannels handlers.Expose
	PublishToken   string
	PublishMax     int
	AllowOrigin    string
	// Key watches and values (client-side caching).
	Tracking      string // optin or bcast
	WatchMaxKeys  int
	ValueMaxBytes int
	CacheBytes    int
	APICache      bool
	LogLevel      slog.Level
	LogFormat     string
	Demo          bool
}

// parseConfig reads flags, then the environment for flags not given.
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("keyflux", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL (redis://[user:pass@]host:port/db); empty launches a private redis-server")
	mode := fs.String("keyspace-config", "auto", "auto: add the notify-keyspace-events flags Keyflux needs; none: never send CONFIG (managed Redis)")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 15*time.Second, "idle time before a heartbeat comment; bounds how long a vanished client lingers")
	fs.DurationVar(&c.Retry, "retry", 2*time.Second, "reconnect delay sent to browsers in the retry field")
	fs.IntVar(&c.ReplaySize, "replay-size", 1024, "events kept per stream for Last-Event-ID resume")
	fs.DurationVar(&c.Linger, "linger", 30*time.Second, "how long a stream's Redis subscription outlives its last client")
	fs.IntVar(&c.QueueBytes, "queue-bytes", 1<<20, "bytes a client may fall behind before it is disconnected")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", 10*time.Second, "how long a client's socket may accept nothing before it is dropped")
	expose := fs.String("expose", "", "comma-separated key prefixes clients may watch; empty exposes every key")
	exposeChannels := fs.String("expose-channels", "", "comma-separated pub/sub channel prefixes clients may relay and publish to; empty exposes every channel")
	fs.StringVar(&c.PublishToken, "publish-token", "", "Bearer token that enables POST /api/channels/<channel> and /api/log/<stream-key>; empty disables publishing")
	fs.IntVar(&c.PublishMax, "publish-max-bytes", 64<<10, "largest body POST /api/channels and /api/log accept (larger: 413)")
	fs.StringVar(&c.AllowOrigin, "allow-origin", "", "Access-Control-Allow-Origin for streams and the API (empty: same origin only)")
	fs.StringVar(&c.Tracking, "tracking", "optin", "client-side caching mode: optin (Redis tracks the keys Keyflux reads) or bcast (Redis sends every change under the exposed prefixes)")
	fs.IntVar(&c.WatchMaxKeys, "watch-max-keys", 100, "how many keys one /streams/keys request may watch")
	fs.IntVar(&c.ValueMaxBytes, "value-max-bytes", 64<<10, "larger values (their JSON) are sent as {\"truncated\": true, \"size\": N}")
	fs.IntVar(&c.CacheBytes, "cache-bytes", 128<<20, "memory for the client-side cache of key values")
	fs.BoolVar(&c.APICache, "api-cache", true, "serve /api/keys from the client-side cache (false: one Redis read per request)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.BoolVar(&c.Demo, "demo", false, "also run a demo writer: sample sensor:*, session:*, order:* keys in the Redis in use")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("KEYFLUX")); err != nil {
		return c, err
	}
	var err error
	if c.KeyspaceConfig, err = redis.ParseNotifyMode(*mode); err != nil {
		return c, err
	}
	if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("log-level: %w", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("log-format %q: want text or json", c.LogFormat)
	}
	if c.Heartbeat <= 0 || c.Retry <= 0 || c.WriteTimeout <= 0 || c.Linger < 0 {
		return c, fmt.Errorf("heartbeat, retry and write-timeout must be positive, linger not negative")
	}
	if c.ReplaySize < 1 || c.QueueBytes < 1024 {
		return c, fmt.Errorf("replay-size must be at least 1 and queue-bytes at least 1024")
	}
	if c.PublishMax < 1 || c.PublishMax > 4<<20 {
		return c, fmt.Errorf("publish-max-bytes must be from 1 to 4194304 (the HTTP body limit)")
	}
	if c.Tracking != "optin" && c.Tracking != "bcast" {
		return c, fmt.Errorf("tracking %q: want optin or bcast", c.Tracking)
	}
	if c.WatchMaxKeys < 1 || c.ValueMaxBytes < 64 || c.CacheBytes < 1<<20 {
		return c, fmt.Errorf("watch-max-keys must be at least 1, value-max-bytes at least 64 and cache-bytes at least 1 MiB")
	}
	c.Expose = handlers.ParseExpose(*expose)
	c.ExposeChannels = handlers.ParseExpose(*exposeChannels)
	return c, nil
}

func (c Config) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
