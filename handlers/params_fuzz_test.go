package handlers

import (
	"context"
	"net/url"
	"testing"

	"github.com/keyflux/keyflux/handlers/auth"

	"go.uber.org/goleak"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/redis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testHandler(expose ...string) *handler {
	return &handler{cfg: Config{
		Hub:      streams.NewHub(streams.HubOptions{}),
		Keyspace: &redis.Keyspace{},
		Expose:   expose,
		// Both database rules: 16 databases, two of them exposed.
		Databases: 16,
		ExposeDB:  []int{0, 3},
	}}
}

// FuzzStreamQuery feeds arbitrary query strings to the keyspace stream's
// parsing: it must answer with a spec or a client error, never panic, and
// equal queries must give equal stream keys.
func FuzzStreamQuery(f *testing.F) {
	for _, seed := range []string{
		"pattern=user:*&events=set,del",
		"pattern=a&events=del,set,set&db=3",
		`filter=event == "set" && value.temp > 30&map={"k": key}`,
		"throttle=500ms&buffer=2s&buffer=50",
		"buffer=1s,10&slow=reset&lastEventId=abc-1",
		"pattern=%00&db=-1&events=SET",
		"filter=nosuch(key)&throttle=0",
		"pattern=user:\\*&fliter=x",
		"pattern=user:*&db=0&db=1",
		"pattern=a&db=65535",
		"pattern=a*&db=16&values=true",
	} {
		f.Add(seed)
	}
	h := testHandler("user:", "a")
	// A tenant's identity: its scopes are checked on every parse as well.
	who := &auth.Identity{Mode: auth.ModeJWT, Scopes: auth.Scopes{Keys: auth.Selectors{"user:4*", "a"}, AnyDB: true}}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, err := h.request(context.Background(), keyspace, who, "", q)
		if err != nil {
			if _, ok := err.(*badRequest); !ok {
				t.Fatalf("%q: error %T %v is not a client error", raw, err, err)
			}
			return
		}
		again, err := h.request(context.Background(), keyspace, who, "", q)
		if err != nil || again.specs[0].Key() != req.specs[0].Key() {
			t.Fatalf("%q: parsed twice to %q and %q (%v)", raw, req.specs[0].Key(), again.specs[0].Key(), err)
		}
		_, _ = parsePolicy(q)
	})
}
