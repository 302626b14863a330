package main

import (
	"io"
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

func TestDemoFlagWritesAndStops(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--demo")
	s := k.open("/streams/keyspace?pattern=*")
	s.Expect("connected")
	seen := map[string]bool{}
	for !seen["sensor"] || !seen["order"] {
		d := testkit.Data(t, s.Next())
		key, _ := d["key"].(string)
		prefix, _, _ := strings.Cut(key, ":")
		seen[prefix] = true
	}
	k.stop() // the demo writer stops with the server (goleak checks the rest)
	s.Ended()
}

func TestDemoFromEnvironment(t *testing.T) {
	t.Setenv("KEYFLUX_DEMO", "true")
	cfg, err := parseConfig(nil, io.Discard)
	if err != nil || !cfg.Demo {
		t.Fatalf("KEYFLUX_DEMO=true: demo %v, err %v", cfg.Demo, err)
	}
}
