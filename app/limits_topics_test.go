package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

// channels is what Redis has SUBSCRIBEd, sorted.
func (k *keyflux) channels() []string {
	k.t.Helper()
	got, err := k.do("PUBSUB", "CHANNELS").AsStrSlice()
	if err != nil {
		k.t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

// --max-topics caps distinct live topics, lingering ones included: opening
// and closing ten distinct streams under a long --linger keeps at most three
// topics and three Redis subscriptions, the newest.
func TestMaxTopicsReleasesTheOldestLingering(t *testing.T) {
	k := startKeyflux(t, nil, "--max-topics", "3", "--linger", "1h")
	for i := range 10 {
		s := k.open(fmt.Sprintf("/streams/channels/c%d", i))
		s.Expect("connected")
		s.Close()
		// The topic lingers only once the server has seen the client go;
		// until then it has a client, and a fourth would rightly be refused.
		testkit.Eventually(t, "the server to release the client", func() bool { return k.srv.sink.Clients() == 0 })
		if n := k.srv.hub.Topics(); n > 3 {
			t.Fatalf("after stream %d: %d topics live, want at most 3", i, n)
		}
	}
	want := []string{"c7", "c8", "c9"}
	testkit.Eventually(t, "Redis to hold only the three newest subscriptions", func() bool {
		return slices.Equal(k.channels(), want)
	})
}

// With three topics all held by clients, a fourth distinct stream gets a
// real 503 (not a 200 head and a close) with Retry-After and a JSON error,
// and nothing is subscribed; once a client leaves, its topic makes room.
func TestMaxTopicsRefusesWhenEveryTopicHasClients(t *testing.T) {
	k := startKeyflux(t, nil, "--max-topics", "3", "--linger", "1h")

	held := make([]*testkit.Stream, 3)
	for i := range held {
		held[i] = k.open(fmt.Sprintf("/streams/channels/h%d", i))
		held[i].Expect("connected")
	}

	resp, err := plainClient.Get(k.base + "/streams/channels/refused")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var msg map[string]any
	if resp.StatusCode != 503 || json.Unmarshal(body, &msg) != nil || msg["error"] == nil {
		t.Fatalf("fourth distinct stream: %d %s, want 503 with a JSON error", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if got := k.channels(); !slices.Equal(got, []string{"h0", "h1", "h2"}) || k.srv.hub.Topics() != 3 {
		t.Fatalf("after the refusal: channels %v, topics %d", got, k.srv.hub.Topics())
	}
	if n := metric(t, k, "keyflux_streams_refused_total"); n != 1 {
		t.Fatalf("keyflux_streams_refused_total %v, want 1", n)
	}

	// A client leaving makes room again.
	held[0].Close()
	testkit.Eventually(t, "h0's client to be gone", func() bool { return metric(t, k, "keyflux_clients_connected") == 2 })
	again := k.open("/streams/channels/refused")
	again.Expect("connected")
	testkit.Eventually(t, "h0 to be released for it", func() bool {
		return slices.Equal(k.channels(), []string{"h1", "h2", "refused"})
	})
}
