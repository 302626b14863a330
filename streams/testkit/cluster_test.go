package testkit

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

func TestKeySlot(t *testing.T) {
	for key, want := range map[string]int{
		"123456789":            12739, // the spec's CRC16 check value 0x31C3
		"foo":                  12182,
		"{user1000}.following": KeySlot("user1000"),
		"foo{}{bar}":           KeySlot("foo{}{bar}"), // an empty tag hashes the whole key
		"foo{{bar}}zap":        KeySlot("{bar"),
		"{a}{b}":               KeySlot("a"),
		"no tag {":             KeySlot("no tag {"),
	} {
		if got := KeySlot(key); got != want {
			t.Errorf("KeySlot(%q) = %d, want %d", key, got, want)
		}
	}
	if KeySlot("foo{}{bar}") == KeySlot("bar") {
		t.Error("an empty first tag must not fall through to the next one")
	}
}

// One cluster serves every check: starting six nodes is the cost.
func TestCluster(t *testing.T) {
	began := time.Now()
	c := StartCluster(t, 3, 1)
	t.Logf("3 masters + 3 replicas ready in %v", time.Since(began).Round(time.Millisecond))
	ctx := context.Background()

	masters, replicas := c.Masters(t), c.Replicas(t)
	if len(masters) != 3 || len(replicas) != 3 {
		t.Fatalf("masters %v, replicas %v", masters, replicas)
	}
	for _, m := range masters {
		if r := c.ReplicasOf(t, m); len(r) != 1 {
			t.Fatalf("replicas of %s: %v", m, r)
		}
	}
	opt, err := rueidis.ParseURL(c.URL())
	if err != nil || len(opt.InitAddress) != 6 {
		t.Fatalf("URL %s: %v %v", c.URL(), opt.InitAddress, err)
	}

	cl := c.Client(t)
	set := func(cl rueidis.Client, key, value string) {
		t.Helper()
		if err := cl.Do(ctx, cl.B().Set().Key(key).Value(value).Build()).Error(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
	}
	// get reads a key from one node only: an error (MOVED) if it does not own it.
	get := func(cl rueidis.Client, key string) string {
		t.Helper()
		v, err := cl.Do(ctx, cl.B().Get().Key(key).Build()).ToString()
		if err != nil {
			t.Fatalf("GET %s: %v", key, err)
		}
		return v
	}

	t.Run("KeyOn", func(t *testing.T) {
		for _, m := range masters {
			key := c.KeyOn(t, m, "k:")
			node := c.NodeClient(t, m)
			slot, err := node.Do(ctx, node.B().ClusterKeyslot().Key(key).Build()).AsInt64()
			if err != nil || int(slot) != KeySlot(key) {
				t.Fatalf("CLUSTER KEYSLOT %s = %d %v, KeySlot %d", key, slot, err, KeySlot(key))
			}
			set(cl, key, m)
			if got := get(node, key); got != m {
				t.Fatalf("%s on %s = %q", key, m, got)
			}
		}
	})

	// Failover swaps the roles of the first master and its replica.
	old := masters[0]
	promoted := c.ReplicasOf(t, old)[0]
	key := c.KeyOn(t, old, "f:")
	set(cl, key, "before failover")
	t.Run("Failover", func(t *testing.T) {
		c.Failover(t, promoted)
		if ms, rs := c.Masters(t), c.Replicas(t); !slices.Contains(ms, promoted) || !slices.Contains(rs, old) || len(ms) != 3 {
			t.Fatalf("after failover masters %v, replicas %v", ms, rs)
		}
		if got := get(c.NodeClient(t, promoted), key); got != "before failover" {
			t.Fatalf("%s on the promoted replica = %q", key, got)
		}
	})

	t.Run("MoveSlot", func(t *testing.T) {
		from, to := c.Masters(t)[1], c.Masters(t)[2]
		key := c.KeyOn(t, from, "m:")
		set(cl, key, "moved")
		// Writes to the slot keep flowing during the migration (ASK, then MOVED).
		stop, wrote := make(chan struct{}), make(chan int)
		go func() {
			n := 0
			for ; ; n++ {
				select {
				case <-stop:
					wrote <- n
					return
				default:
				}
				k := "{" + key + "}:" + strconv.Itoa(n)
				if err := cl.Do(ctx, cl.B().Set().Key(k).Value(k).Build()).Error(); err != nil {
					t.Errorf("SET %s during the migration: %v", k, err)
				}
			}
		}()
		c.MoveSlot(t, KeySlot(key), to)
		close(stop)
		n := <-wrote
		node := c.NodeClient(t, to)
		if got := get(node, key); got != "moved" {
			t.Fatalf("%s on its new owner = %q", key, got)
		}
		for i := 0; i < n; i++ {
			if k := "{" + key + "}:" + strconv.Itoa(i); get(node, k) != k {
				t.Fatalf("%s written during the migration is lost", k)
			}
		}
		t.Logf("%d keys written during the migration, all on the new owner", n)
		if got := get(cl, key); got != "moved" {
			t.Fatalf("%s through the cluster client = %q", key, got)
		}
	})

	t.Run("AddMaster", func(t *testing.T) {
		added := c.AddMaster(t)
		if ms := c.Masters(t); len(ms) != 4 || !slices.Contains(ms, added) {
			t.Fatalf("masters after AddMaster: %v", ms)
		}
		c.MoveSlot(t, 0, added)
		key := c.KeyOn(t, added, "a:")
		if KeySlot(key) != 0 {
			t.Fatalf("%s: slot %d, the new master owns only slot 0", key, KeySlot(key))
		}
		set(cl, key, "on the new master")
		if got := get(c.NodeClient(t, added), key); got != "on the new master" {
			t.Fatalf("%s on the new master = %q", key, got)
		}
	})

	t.Run("Kill", func(t *testing.T) {
		// The promoted replica is a master again with old as its replica.
		key := c.KeyOn(t, promoted, "x:")
		set(cl, key, "survives")
		node := c.NodeClient(t, promoted)
		if n, err := node.Do(ctx, node.B().Wait().Numreplicas(1).Timeout(5000).Build()).AsInt64(); err != nil || n != 1 {
			t.Fatalf("WAIT: %d %v", n, err)
		}
		c.Kill(t, promoted)
		if ms := c.Masters(t); slices.Contains(ms, promoted) || !slices.Contains(ms, old) || len(ms) != 4 {
			t.Fatalf("masters after Kill: %v", ms)
		}
		if got := get(c.Client(t), key); got != "survives" {
			t.Fatalf("%s after the kill = %q", key, got)
		}
	})
}
