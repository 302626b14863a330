// Command keyflux turns Redis into live Server-Sent Event streams.
//
//	keyflux [flags]   (every flag also reads KEYFLUX_<NAME>; see -h)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	tuneGC()
	err := run(context.Background(), os.Args[1:], os.Stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyflux:", err)
		os.Exit(1)
	}
}

// run is the whole life of the process: it serves until ctx ends or a
// SIGINT/SIGTERM arrives, then shuts down in order. started, when not nil,
// receives the server once it listens (tests use it).
func run(ctx context.Context, args []string, stderr io.Writer, started func(*server)) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	logger := cfg.logger(stderr)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, err := newServer(ctx, cfg, logger)
	if err != nil {
		return err
	}
	logger.Info("keyflux listening", "url", "http://"+s.addr())
	if started != nil {
		started(s)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.serve() }()
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err = <-errc:
		logger.Error("http server stopped", "err", err)
	}
	s.shutdown(5 * time.Second)
	logger.Info("stopped")
	return err
}
