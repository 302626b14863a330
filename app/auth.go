package main

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/streams/redis"
)

// authenticator builds the --auth mode: nil for none. close releases what
// it holds (a JWKS refresher).
func authenticator(ctx context.Context, cfg Config, rc *redis.Conn, logger *slog.Logger) (a auth.Authenticator, cookie string, close func(), err error) {
	switch cfg.Auth {
	case auth.ModeJWT:
		j, err := auth.NewJWT(ctx, auth.JWTOptions{
			Key: cfg.JWT.Key, PublicKey: cfg.JWT.PublicKey, JWKS: cfg.JWT.JWKS, Refresh: cfg.JWT.Refresh,
			Leeway: cfg.JWT.Leeway, Issuer: cfg.JWT.Issuer, Audience: cfg.JWT.Audience,
			Cookie: cfg.JWT.Cookie, Logger: logger,
		})
		if err != nil {
			return nil, "", nil, err
		}
		return j, cfg.JWT.Cookie, j.Close, nil
	case auth.ModeSpringSession:
		if rc.Sessions == nil {
			return nil, "", nil, errors.New("--auth spring-session reads sessions through client-side caching: Redis 6 or newer, speaking RESP3")
		}
		s := cfg.SpringSession
		ss, err := auth.NewSpringSession(auth.SpringOptions{
			Namespace: s.Namespace, Cookie: s.Cookie,
			Keys: s.Keys, Channels: s.Channels, Streams: s.Streams, Publish: s.Publish,
			Store: rc.Sessions, Logger: logger,
		})
		if err != nil {
			return nil, "", nil, err
		}
		return ss, s.Cookie, func() {}, nil
	}
	if !loopback(cfg.Listen) {
		logger.Warn("--auth none on a non-loopback address: anyone who can reach " + cfg.Listen +
			" reads every exposed key; see docs/security.md")
	}
	return nil, "", func() {}, nil
}

// loopback reports whether a listen address only accepts local clients.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
