package redis

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// Close waits for the UNSUBSCRIBEs of streams that were just closed, so
// that no subscription goroutine still uses the client as it closes.
func TestCloseWaitsForUnsubscribes(t *testing.T) {
	srv := testkit.StartRedis(t)
	c, err := Open(context.Background(), Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	r := testkit.NewRecorder()
	for i := range 100 {
		if _, err := h.Subscribe(c.Channels.Stream(streams.ChannelQuery{Name: "c" + strconv.Itoa(i)}), r, ""); err != nil {
			t.Fatal(err)
		}
	}
	r.Wait(t, 100) // every subscription is live
	h.Close()
	c.Close()
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "(*Upstreams).run") {
		t.Fatalf("a subscription goroutine outlived Close:\n%s", stacks)
	}
}
