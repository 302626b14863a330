package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestDemoFlagWritesAndStops(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--demo")
	s := k.open("/streams/keyspace?pattern=*")
	s.expect("connected")
	seen := map[string]bool{}
	for !seen["sensor"] || !seen["order"] {
		d := data(t, s.next())
		key, _ := d["key"].(string)
		prefix, _, _ := strings.Cut(key, ":")
		seen[prefix] = true
	}
	k.stop() // the demo writer stops with the server (goleak checks the rest)
	s.ended()
}

// TestDemoStory runs the demo fast and checks that every kind of event it
// promises shows up, and that stopping it leaves nothing running.
func TestDemoStory(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	s := k.open("/streams/keyspace?pattern=*")
	s.expect("connected")
	// The demo borrows the test's client, whose connections start and stop
	// reader goroutines of their own as traffic comes and goes.
	baseline := append([]goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._backgroundRead"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._backgroundWrite")}, fasthttpOwn...)

	stop := startDemo(k.rc, 2*time.Millisecond, slog.New(slog.DiscardHandler))
	want := map[string]bool{
		"set sensor:kitchen:temp": false, "expired sensor:garage:temp": false,
		"set session": false, "expired session": false, "del session": false, "expire session": false,
		"hset order": false, "del order": false, "incrby stats:visits": false,
	}
	missing := len(want)
	for missing > 0 {
		ev := s.next()
		key, _ := data(t, ev)["key"].(string)
		for _, name := range []string{ev.Type + " " + key, ev.Type + " " + strings.SplitN(key, ":", 2)[0]} {
			if seen, ok := want[name]; ok && !seen {
				want[name] = true
				missing--
			}
		}
	}
	stop()
	goleak.VerifyNone(t, baseline...)
}

// TestDemoRateIsBounded counts the commands Redis receives per demo step.
func TestDemoRateIsBounded(t *testing.T) {
	k := startKeyflux(t, nil)
	d := &demo{c: k.rc, log: slog.New(slog.DiscardHandler), tick: time.Millisecond, rng: demoRand()}
	before := k.commands()
	const steps = 500
	for range steps {
		d.once(context.Background())
	}
	if n := k.commands() - before - 1; n > 4*steps || n < steps {
		t.Fatalf("%d commands for %d steps, want between 1 and 4 a step", n, steps)
	}
	if len(d.sessions) > 20 || len(d.orders) > 4 {
		t.Fatalf("demo state grows: %d sessions, %d orders", len(d.sessions), len(d.orders))
	}
}

// commands is Redis's count of commands processed (this call included).
func (k *keyflux) commands() int {
	info, _ := k.do("INFO", "stats").ToString()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			n := 0
			for _, c := range v {
				n = n*10 + int(c-'0')
			}
			return n
		}
	}
	k.t.Fatal("no total_commands_processed in INFO")
	return 0
}

func TestDemoFromEnvironment(t *testing.T) {
	t.Setenv("KEYFLUX_DEMO", "true")
	cfg, err := parseConfig(nil, io.Discard)
	if err != nil || !cfg.Demo {
		t.Fatalf("KEYFLUX_DEMO=true: demo %v, err %v", cfg.Demo, err)
	}
}
