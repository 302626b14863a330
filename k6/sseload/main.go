// Command sseload is Keyflux's own load tool. It opens many Server-Sent
// Event streams against a running Keyflux, on loopback only, and measures
// one of five things:
//
//   - idle: what an open but silent stream costs the server, as resident
//     memory per stream (from /proc/<pid>/status) while every stream is
//     connected and confirmed by the server's own keyflux_clients_connected;
//   - fanout: how long one Redis write takes to reach every client, by
//     writing keys itself at a fixed rate and timing each delivery, what
//     each delivery costs the server and each write its Redis in CPU
//     (-pid, -baseline; -json for a script such as journal-overhead.sh),
//     and, with -stalled, whether clients that stop reading slow the others
//     down and are cut off by the server;
//   - amplification: what clients that each open a stream with a topic of
//     their own and leave at once leave behind (Redis pattern
//     subscriptions, topics, goroutines, RSS) and what that does to
//     Redis's SET throughput, against a Redis no Keyflux uses;
//   - stalled-crowd: the server's RSS over time while thousands of clients
//     that never read sit on a busy stream, and after they leave;
//   - connect: the time from dial to the "connected" event per stream, with
//     a bearer token or cookie if given, to show what authentication costs.
//
// Three more modes, with flags of their own (sseload -mode bench -h),
// compare any SSE server with the write(2) floor (issue 15): bench (fan-out
// cost, latency and memory of any server with a publish path),
// floor-server (the floor itself) and chart (an SVG of bench results).
//
// It exists beside the k6 script (keyspace-stream.js) because k6 spends a
// VU, and its memory, per stream and has no view of the Redis writes, so it
// can show neither the server's per-stream cost at 10,000 streams on one
// machine nor write-to-delivery latency.
//
// Every run is bounded: a fixed number of streams and events, a -timeout
// for the whole run, and it stops by itself. Exit codes: 0 the measurement
// completed cleanly; 1 it ran but something failed (a stream did not
// connect or dropped, events were lost, a stalled stream was not cut off,
// a reading failed, interrupted);
// 2 the flags were wrong.
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

// Exit codes, as documented in the usage text.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// errFailed marks a run that completed but found failures it has already
// reported, so main only sets the exit code.
var errFailed = errors.New("run completed with failures")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the chosen mode and maps the outcome to an exit
// code. Results go to stdout, progress and errors to stderr.
func run(args []string, stdout, stderr io.Writer) int {
	if _, ok := benchMode(args); ok {
		return runBenchModes(args, stdout, stderr)
	}
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "sseload:", err)
		fmt.Fprintln(stderr, "run 'sseload -h' for usage")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := raiseNoFile(stderr, cfg.streams()); err != nil {
		fmt.Fprintln(stderr, "sseload:", err)
		return exitFailed
	}
	switch cfg.Mode {
	case modeIdle:
		err = runIdle(ctx, cfg, stdout, stderr)
	case modeFanout:
		err = runFanout(ctx, cfg, stdout, stderr)
	case modeAmplification:
		err = runAmplification(ctx, cfg, stdout, stderr)
	case modeStalledCrowd:
		err = runStalledCrowd(ctx, cfg, stdout, stderr)
	case modeConnect:
		err = runConnect(ctx, cfg, stdout, stderr)
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
