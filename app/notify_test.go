package main

import (
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

func TestKeyspaceFlagsSwitchedOffAreRestoredWithAReset(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--keyspace-check", "100ms")
	s := k.open("/streams/keyspace?pattern=d:*")
	s.Expect("connected")
	k.do("SET", "d:1", "x")
	s.Expect("set")

	k.do("CONFIG", "SET", "notify-keyspace-events", "") // someone else
	k.do("SET", "d:lost", "x")
	if reset := testkit.Data(t, s.Expect("reset")); reset["reason"] != "notify-config" {
		t.Fatalf("reset %v, want reason notify-config", reset)
	}
	k.do("SET", "d:2", "x")
	if got := testkit.Data(t, s.Expect("set"))["key"]; got != "d:2" {
		t.Fatalf("after the reset got %v, want d:2", got)
	}
	if !strings.Contains(k.logs.String(), "restored them") {
		t.Fatalf("no log line:\n%s", k.logs)
	}
	if n := metric(t, k, "keyflux_keyspace_config_restored_total"); n != 1 {
		t.Fatalf("keyflux_keyspace_config_restored_total %v, want 1", n)
	}
	if n := metric(t, k, `keyflux_resets_total{reason="notify-config"}`); n != 1 {
		t.Fatalf(`keyflux_resets_total{reason="notify-config"} %v, want 1`, n)
	}
	if status, body := k.get("/readyz"); status != 200 {
		t.Fatalf("/readyz %d %v after the flags were restored", status, body)
	}
}

func TestNoneModeWithoutFlagsIsNotReady(t *testing.T) {
	k := startKeyflux(t, nil, "--keyspace-config", "none", "--keyspace-check", "100ms")
	status, body := k.get("/readyz")
	if e, _ := body["error"].(string); status != 503 || !strings.Contains(e, "notify-keyspace-events") {
		t.Fatalf("/readyz %d %v, want 503 naming notify-keyspace-events", status, body)
	}
	if n := metric(t, k, "keyflux_keyspace_notifications_missing"); n != 1 {
		t.Fatalf("keyflux_keyspace_notifications_missing %v, want 1", n)
	}
	s := k.open("/streams/keyspace?pattern=n:*")
	if w, _ := testkit.Data(t, s.Expect("connected"))["warning"].(string); !strings.Contains(w, "notify-keyspace-events") {
		t.Fatalf("connected has no warning (%q)", w)
	}

	k.do("CONFIG", "SET", "notify-keyspace-events", "KA") // the operator fixes it
	if reset := testkit.Data(t, s.Expect("reset")); reset["reason"] != "notify-config" {
		t.Fatalf("reset %v, want reason notify-config", reset)
	}
	if status, body := k.get("/readyz"); status != 200 {
		t.Fatalf("/readyz %d %v with the flags back", status, body)
	}
	k.do("SET", "n:1", "x")
	if got := testkit.Data(t, s.Expect("set"))["key"]; got != "n:1" {
		t.Fatalf("got %v, want n:1", got)
	}
}
