package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// The demo writer (--demo) makes a fresh dashboard come alive: it writes
// sample keys into the Redis Keyflux uses, at a bounded rate (one step per
// tick, at most four commands a step), so every kind of event shows up:
//
//   - sensor:<room>:temp  strings with a TTL, refreshed while the sensor
//     reports; the garage sensor goes quiet now and then and its key expires.
//   - session:<id>        strings that expire, are refreshed, or are deleted
//     on logout.
//   - order:<n>           hashes moving placed -> paid -> shipped -> delivered,
//     deleted some time after delivery.
//   - stats:visits        a counter.
//
// All durations are counted in ticks, so a test can run the same story fast.
type demo struct {
	c      rueidis.Client
	logger *slog.Logger
	tick   time.Duration
	rng    *rand.Rand

	step     int
	sessions []string
	orders   []*demoOrder
	nextID   int
}

type demoOrder struct {
	id    int
	state int // index into orderStates; past the end: awaiting deletion
}

var (
	demoRooms   = []string{"kitchen", "office", "server-room", "garage"}
	orderStates = []string{"placed", "paid", "shipped", "delivered"}
	demoUsers   = []string{"ada", "grace", "linus", "margaret", "ken", "barbara"}
)

// StartDemo runs the demo writer on the Redis in use until stop is called;
// stop waits for it.
func (c *Conn) StartDemo(tick time.Duration, logger *slog.Logger) (stop func()) {
	return startDemo(c.client, tick, logger)
}

func startDemo(c rueidis.Client, tick time.Duration, logger *slog.Logger) (stop func()) {
	d := &demo{c: c, logger: logger, tick: tick, rng: demoRand()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.run(ctx)
	}()
	logger.Info("demo writer started", "keys", "sensor:*, session:*, order:*, stats:visits", "tick", tick)
	return func() {
		cancel()
		<-done
	}
}

func demoRand() *rand.Rand { return rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano()))) }

func (d *demo) run(ctx context.Context) {
	t := time.NewTicker(d.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.once(ctx)
		}
	}
}

// once is one step of the story.
func (d *demo) once(ctx context.Context) {
	d.step++
	var cmds rueidis.Commands
	cmds = append(cmds, d.sensor()...)
	if d.step%4 == 0 {
		cmds = append(cmds, d.session())
	}
	if d.step%3 == 0 {
		cmds = append(cmds, d.order())
	}
	if d.step%2 == 0 {
		cmds = append(cmds, d.c.B().Incr().Key("stats:visits").Build())
	}
	for _, r := range d.c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil && ctx.Err() == nil {
			d.logger.Debug("demo write failed", "err", err)
		}
	}
}

func (d *demo) ticks(n int) time.Duration { return time.Duration(n) * d.tick }

// sensor updates one room per step, round robin; each reading lives for ten
// ticks, so a room stays present while it reports every four.
func (d *demo) sensor() rueidis.Commands {
	room := demoRooms[d.step%len(demoRooms)]
	if room == "garage" && d.step%80 >= 40 { // the garage goes quiet: its key expires
		return nil
	}
	reading, _ := json.Marshal(map[string]any{
		"celsius":  float64(int((18+d.rng.Float64()*8)*10)) / 10,
		"humidity": 35 + d.rng.IntN(30),
		"at":       time.Now().UTC().Format(time.TimeOnly),
	})
	return rueidis.Commands{d.c.B().Set().Key("sensor:" + room + ":temp").Value(string(reading)).
		Px(d.ticks(10)).Build()}
}

// session logs someone in, or refreshes or ends an existing session.
func (d *demo) session() rueidis.Completed {
	if n := len(d.sessions); n > 3 && d.rng.IntN(3) > 0 {
		i := d.rng.IntN(n)
		key := d.sessions[i]
		d.sessions = append(d.sessions[:i], d.sessions[i+1:]...)
		if d.rng.IntN(2) == 0 {
			return d.c.B().Del().Key(key).Build() // logout
		}
		return d.c.B().Pexpire().Key(key).Milliseconds(d.ticks(30).Milliseconds()).Build() // activity
	}
	key := fmt.Sprintf("session:%08x", d.rng.Uint32())
	d.sessions = append(d.sessions, key) // may expire before it is picked: that is the point
	if len(d.sessions) > 20 {
		d.sessions = d.sessions[1:]
	}
	user := demoUsers[d.rng.IntN(len(demoUsers))]
	v, _ := json.Marshal(map[string]any{"user": user, "ip": "10.0.0." + strconv.Itoa(2+d.rng.IntN(200))})
	return d.c.B().Set().Key(key).Value(string(v)).Px(d.ticks(15 + d.rng.IntN(25))).Build()
}

// order moves one order a state forward, creating orders as needed and
// deleting delivered ones.
func (d *demo) order() rueidis.Completed {
	if len(d.orders) < 4 {
		d.nextID++
		o := &demoOrder{id: 1000 + d.nextID}
		d.orders = append(d.orders, o)
		return d.c.B().Hset().Key(o.key()).FieldValue().
			FieldValue("status", orderStates[0]).
			FieldValue("total", strconv.Itoa(10+d.rng.IntN(190))+".00").
			FieldValue("customer", demoUsers[d.rng.IntN(len(demoUsers))]).Build()
	}
	i := d.rng.IntN(len(d.orders))
	o := d.orders[i]
	o.state++
	if o.state >= len(orderStates) {
		d.orders = append(d.orders[:i], d.orders[i+1:]...)
		return d.c.B().Del().Key(o.key()).Build()
	}
	return d.c.B().Hset().Key(o.key()).FieldValue().
		FieldValue("status", orderStates[o.state]).
		FieldValue("updated", time.Now().UTC().Format(time.TimeOnly)).Build()
}

func (o *demoOrder) key() string { return "order:" + strconv.Itoa(o.id) }
