package redis

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/redis/redisserver"
	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/redis/rueidis"
)

// TestUnsubscribeDuringBurst leaves a subscription while a pipelined
// publisher floods it. rueidis hands messages over a 16-slot channel that
// Receive's goroutine drains; the UNSUBSCRIBE must not wait for its reply on
// that goroutine, or the connection's reader blocks on the full channel
// before it reads the reply, and every subscription and command sharing the
// connection stops for good. Afterwards the connection still serves
// commands, new subscriptions (to the same channel, which waits for the old
// UNSUBSCRIBE, and to another) get Ready, and Redis holds no subscription.
func TestUnsubscribeDuringBurst(t *testing.T) {
	for _, pattern := range []bool{false, true} {
		name := map[bool]string{false: "channel", true: "pattern"}[pattern]
		t.Run(name, func(t *testing.T) {
			srv, pub := testkit.Redis(t)
			sub := stallableClient(t, srv) // the connection that must not stall
			ups := &Upstreams{Client: sub}
			target := Target{Name: "burst", Pattern: pattern}

			var got atomic.Int64
			hundred := make(chan struct{}, 1)
			ready := make(chan struct{}, 1)
			leave := ups.Join(target, &Listener{
				OnMessage: func(rueidis.PubSubMessage) {
					if got.Add(1) == 100 {
						hundred <- struct{}{}
					}
				},
				OnState: func(k streams.Kind, _ string) {
					if k == streams.Ready {
						ready <- struct{}{}
					}
				},
			})
			within(t, ready, "first subscription Ready")

			ctx, cancel := context.WithCancel(context.Background())
			published := make(chan struct{})
			go func() {
				defer close(published)
				cmds := make(rueidis.Commands, 1000)
				for ctx.Err() == nil {
					for i := range cmds {
						cmds[i] = pub.B().Publish().Channel("burst").Message("x").Build()
					}
					pub.DoMulti(ctx, cmds...)
				}
			}()
			defer func() { cancel(); <-published }()

			within(t, hundred, "100 messages")
			leave() // mid-burst

			// The shared connection still answers commands.
			pinged := make(chan struct{}, 1)
			go func() {
				pctx, pcancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer pcancel()
				if sub.Do(pctx, sub.B().Ping().Build()).Error() == nil {
					pinged <- struct{}{}
				}
			}()
			within(t, pinged, "PING on the subscribing connection")

			// A new subscription to the same channel waits for the old
			// UNSUBSCRIBE, then goes live; so does one to another channel.
			for _, again := range []Target{target, {Name: "other", Pattern: pattern}} {
				ready := make(chan struct{}, 1)
				leave := ups.Join(again, &Listener{
					OnMessage: func(rueidis.PubSubMessage) {},
					OnState: func(k streams.Kind, _ string) {
						if k == streams.Ready {
							ready <- struct{}{}
						}
					},
				})
				within(t, ready, "Ready of a new subscription to "+again.Name)
				leave()
			}

			cancel()
			<-published
			testkit.Eventually(t, "no subscription left in Redis", func() bool {
				subs, _ := testkit.Do(t, pub, "PUBSUB", "NUMSUB", "burst", "other").ToArray()
				pats, _ := testkit.Do(t, pub, "PUBSUB", "NUMPAT").AsInt64()
				n1, _ := subs[1].AsInt64()
				n2, _ := subs[3].AsInt64()
				return n1+n2+pats == 0
			})
			testkit.Eventually(t, "upstreams stopped", func() bool {
				ups.mu.Lock()
				defer ups.mu.Unlock()
				return len(ups.live) == 0 && len(ups.stopping) == 0
			})
		})
	}
}

// stallableClient is a client of srv whose closing, when the test ends,
// gives up after 5 s: rueidis's Close waits for a stalled reader forever.
func stallableClient(t *testing.T, srv *redisserver.Server) rueidis.Client {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Error("closing the client hung: its reader is stalled")
		}
	})
	return c
}

// within waits for ch, failing the test after 5 s instead of hanging: on a
// stalled connection nothing would ever come.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s: the subscribing connection is stalled", what)
	}
}
