package redis

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/redis/rueidis"
)

func TestValueShapes(t *testing.T) {
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for got, want := range map[string]string{
		js(text("héllo\n")):                `"héllo\n"`,
		js(text("\xff\x00")):               `{"base64":"/wA="}`,
		js(score(1.5)):                     `1.5`,
		js(score(1e300)):                   `1e+300`,
		js(score(math.Inf(1))):             `"inf"`,
		js(score(math.Inf(-1))):            `"-inf"`,
		js(hashValue(map[string]string{})): `{}`,
		js(hashValue(map[string]string{"b": "1", "\xfe": "2"})): `[["b","1"],[{"base64":"/g=="},"2"]]`,
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

func TestTrackingRoutesInvalidations(t *testing.T) {
	srv, c := testkit.Redis(t)
	var tr Invalidations
	cache, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()},
		PipelineMultiplex: -1, OnInvalidations: tr.OnInvalidations})
	if err != nil {
		t.Fatal(err)
	}
	a, b := &keyWatch{key: "a", wake: make(chan struct{}, 1)}, &keyWatch{key: "b", wake: make(chan struct{}, 1)}
	tr.add(a)
	tr.add(b)
	woken := func(w *keyWatch) bool {
		select {
		case <-w.wake:
			return true
		default:
			return false
		}
	}
	ctx := context.Background()
	for _, key := range []string{"a", "b", "other"} {
		if err := cache.DoCache(ctx, cache.B().Get().Key(key).Cache(), time.Hour).Error(); err != nil && !rueidis.IsRedisNil(err) {
			t.Fatal(err)
		}
	}
	testkit.Do(t, c, "SET", "other", "x") // tracked, but nobody watches it
	testkit.Do(t, c, "SET", "a", "x")
	// Received counts after the pokes: once it says 2, both were routed.
	testkit.Eventually(t, "two invalidations", func() bool { return tr.Received() == 2 })
	if !woken(a) || woken(b) || a.resync {
		t.Fatal("a change of a did not wake a alone, for an update")
	}
	cache.Close() // rueidis: everything is invalid
	testkit.Eventually(t, "the flush", func() bool { return tr.Received() == 3 })
	if !woken(a) || !woken(b) || !a.resync || !b.resync {
		t.Fatal("a flush did not wake every watch for a snapshot")
	}
	tr.remove(a)
	tr.remove(b)
	if tr.Watched() != 0 {
		t.Fatalf("%d watched after removing all", tr.Watched())
	}
}

func TestHealCountsTTLDown(t *testing.T) {
	w := &keyWatch{key: "k"}
	if _, ok := w.heal(); ok {
		t.Fatal("a watch that has not read its key healed")
	}
	st := state(`"a"`, time.Now().Add(time.Minute).UnixMilli())
	st.TTLms = 120000 // as read long ago
	w.set(st)
	ev, _ := w.heal()
	got := ev.Data.(streams.KeyState)
	if got.TTLms > 60000 || got.TTLms < 50000 {
		t.Fatalf("healed with ttl_ms %d, want the time left (about 60000)", got.TTLms)
	}
	w.set(state(`"b"`, 0))
	if ev, ok := w.heal(); !ok || !strings.Contains(string(ev.Data.(streams.KeyState).Value), `"b"`) {
		t.Fatalf("healed with %+v", ev)
	}
}
