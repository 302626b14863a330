package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

// TestExposeDBDefaultsToTheURLsDatabase: with --expose acc: alone, db=1
// used to stream database 1; now only the Redis URL's database is open,
// and nothing is subscribed for a refused request.
func TestExposeDBDefaultsToTheURLsDatabase(t *testing.T) {
	k := startKeyflux(t, nil, "--expose", "acc:")
	sub := url.QueryEscape("a:keyspace?pattern=acc:*&db=1")
	for _, path := range []string{
		"/streams/keyspace?pattern=acc:*&db=1",
		"/streams/keyspace?pattern=acc:1&db=2",
		"/streams?sub=" + sub,
	} {
		status, body := k.get(path)
		if status != 403 || !strings.Contains(body["error"].(string), "db") {
			t.Fatalf("%s: %d %v, want 403 naming the db", path, status, body)
		}
	}
	s := k.open("/streams/keyspace?pattern=acc:*&db=0")
	s.Expect("connected")
	if n, topics := k.numpat(), k.srv.hub.Topics(); n != 1 || topics != 1 {
		t.Fatalf("%d patterns and %d topics, want only the db=0 stream's", n, topics)
	}
}

// TestExposeDBLists: --expose-db opens exactly the databases listed, and
// a stream of a listed database other than the URL's gets its events.
func TestExposeDBLists(t *testing.T) {
	k := startKeyflux(t, nil, "--expose", "acc:", "--expose-db", "0,3")
	s := k.open("/streams/keyspace?pattern=acc:*&db=3&events=set")
	s.Expect("connected")
	// A script's SELECT leaves the test's shared connection in database 0.
	k.do("EVAL", "redis.call('SELECT', 3); return redis.call('SET', KEYS[1], 'v')", "1", "acc:1")
	if ev := testkit.Data(t, s.Expect("set")); ev["key"] != "acc:1" {
		t.Fatalf("event %v", ev)
	}
	for _, db := range []string{"1", "2"} {
		if status, body := k.get("/streams/keyspace?pattern=acc:*&db=" + db); status != 403 {
			t.Fatalf("db=%s: %d %v, want 403", db, status, body)
		}
	}
	// The pattern rule still applies in a listed database.
	if status, _ := k.get("/streams/keyspace?pattern=other:*&db=3"); status != 403 {
		t.Fatalf("pattern outside --expose: %d", status)
	}
}

// TestExposeDBMissingDatabase: a database Redis does not have is 400, before
// any exposure rule, even one that lists it: it used to be accepted and
// stay silent forever.
func TestExposeDBMissingDatabase(t *testing.T) {
	k := startKeyflux(t, []string{"--databases", "4"}, "--expose-db", "0,5")
	for _, db := range []string{"4", "5", "16", "65535"} {
		status, body := k.get("/streams/keyspace?pattern=*&db=" + db)
		if status != 400 || !strings.Contains(body["error"].(string), "does not exist") {
			t.Fatalf("db=%s: %d %v, want 400 saying it does not exist", db, status, body)
		}
	}
	if n, topics := k.numpat(), k.srv.hub.Topics(); n != 0 || topics != 0 {
		t.Fatalf("refused requests left %d patterns and %d topics", n, topics)
	}
}

// TestExposeDBWithoutTheURLsDatabase: a list that leaves out the URL's
// database closes it too, to keyspace streams without db=, key watches and
// /api/keys.
func TestExposeDBWithoutTheURLsDatabase(t *testing.T) {
	k := startKeyflux(t, nil, "--expose-db", "1")
	for _, path := range []string{"/streams/keyspace?pattern=a:*", "/streams/keys?key=a:1", "/api/keys/a:1"} {
		if status, body := k.get(path); status != 403 {
			t.Fatalf("%s: %d %v, want 403", path, status, body)
		}
	}
	s := k.open("/streams/keyspace?pattern=a:*&db=1")
	s.Expect("connected")
}
