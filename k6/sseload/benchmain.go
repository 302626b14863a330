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
)

// runBenchModes runs -mode bench, floor-server or chart.
func runBenchModes(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseBenchConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "sseload:", err)
		fmt.Fprintln(stderr, "run 'sseload -mode bench -h' for usage")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cfg.Mode {
	case modeChart:
		err = runChart(cfg, stdout)
	case modeFloorServer:
		if err = raiseNoFile(stderr, maxClients); err == nil {
			err = runFloorServer(ctx, cfg, stdout, stderr)
		}
	default:
		if err = raiseNoFile(stderr, cfg.Clients); err == nil {
			err = runCompare(ctx, cfg, stdout, stderr)
		}
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errFailed):
		return exitFailed
	default:
		fmt.Fprintln(stderr, "sseload:", err)
		return exitFailed
	}
}
