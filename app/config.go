package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/keyflux/keyflux/handlers"
	"github.com/keyflux/keyflux/streams"
)

// Config is everything Keyflux can be told, by flag or by the matching
// KEYFLUX_* environment variable (--redis-url is KEYFLUX_REDIS_URL).
type Config struct {
	Listen         string
	RedisURL       string
	KeyspaceConfig streams.NotifyMode
	Heartbeat      time.Duration
	Retry          time.Duration
	ReplaySize     int
	Linger         time.Duration
	QueueBytes     int
	WriteTimeout   time.Duration
	Expose         handlers.Expose
	AllowOrigin    string
	LogLevel       slog.Level
	LogFormat      string
	Demo           bool
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
	fs.StringVar(&c.AllowOrigin, "allow-origin", "", "Access-Control-Allow-Origin for streams and the API (empty: same origin only)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.BoolVar(&c.Demo, "demo", false, "also run a demo writer: sample sensor:*, session:*, order:* keys in the Redis in use")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("KEYFLUX")); err != nil {
		return c, err
	}
	var err error
	if c.KeyspaceConfig, err = streams.ParseNotifyMode(*mode); err != nil {
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
	c.Expose = handlers.ParseExpose(*expose)
	return c, nil
}

func (c Config) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
