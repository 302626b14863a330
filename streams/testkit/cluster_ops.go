package testkit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// clusterDo runs one command on a node through the helper's own connection.
func (c *Cluster) clusterDo(t testing.TB, addr string, args ...string) rueidis.RedisResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := c.admin(addr)
	r := admin.Do(ctx, admin.B().Arbitrary(args[0]).Args(args[1:]...).Build())
	if err := r.Error(); err != nil {
		t.Fatalf("cluster: %s %v: %v", addr, args, err)
	}
	return r
}

// Failover promotes a replica with CLUSTER FAILOVER (its master agreeing,
// no write lost) and waits until every node sees it as master and the
// cluster is ok. A manual failover that timed out on a loaded machine is
// asked again.
func (c *Cluster) Failover(t testing.TB, replicaAddr string) {
	t.Helper()
	c.member(t, replicaAddr)
	if n := c.view(t)[replicaAddr]; n == nil || n.master {
		t.Fatalf("cluster: %s is not a replica", replicaAddr)
	}
	c.clusterDo(t, replicaAddr, "CLUSTER", "FAILOVER")
	asked := time.Now()
	c.waitSettled(t, replicaAddr+" promoted by CLUSTER FAILOVER", func(v clusterView) error {
		if v[replicaAddr].master {
			return nil
		}
		if time.Since(asked) > 10*time.Second {
			c.clusterDo(t, replicaAddr, "CLUSTER", "FAILOVER")
			asked = time.Now()
		}
		return fmt.Errorf("%s is still a replica", replicaAddr)
	})
}

// Kill ends a master with SIGKILL, as a crash would, and waits until its
// replica is elected and the cluster is ok again (the node stays dead; it
// is no longer in Masters, URL or Client).
func (c *Cluster) Kill(t testing.TB, masterAddr string) {
	t.Helper()
	m := c.member(t, masterAddr)
	if n := c.view(t)[masterAddr]; n == nil || !n.master {
		t.Fatalf("cluster: %s is not a master", masterAddr)
	}
	m.srv.Kill()
	c.mu.Lock()
	m.dead = true
	c.mu.Unlock()
	// Settled means the live masters cover every slot again: a replica took
	// the dead master's.
	c.waitSettled(t, "a replica of killed "+masterAddr+" promoted", nil)
}

// MoveSlot migrates one slot and its keys live to the master toAddr, by the
// steps redis-cli uses: IMPORTING on the target, MIGRATING on the source,
// MIGRATE of every key, then SETSLOT NODE on the target, the source and
// every other master. It waits until every node agrees on the new owner.
func (c *Cluster) MoveSlot(t testing.TB, slot int, toAddr string) {
	t.Helper()
	if slot < 0 || slot > 16383 {
		t.Fatalf("cluster: no slot %d", slot)
	}
	v := c.waitSettled(t, "cluster at rest before moving a slot", nil)
	to := v[toAddr]
	if to == nil || !to.master {
		t.Fatalf("cluster: %s is not a master", toAddr)
	}
	fromAddr := v.owner(slot)
	if fromAddr == toAddr {
		return
	}
	from, s := v[fromAddr], strconv.Itoa(slot)
	c.clusterDo(t, toAddr, "CLUSTER", "SETSLOT", s, "IMPORTING", from.id)
	c.clusterDo(t, fromAddr, "CLUSTER", "SETSLOT", s, "MIGRATING", to.id)
	host, port, _ := strings.Cut(toAddr, ":")
	for {
		keys, err := c.clusterDo(t, fromAddr, "CLUSTER", "GETKEYSINSLOT", s, "100").AsStrSlice()
		if err != nil {
			t.Fatalf("cluster: GETKEYSINSLOT %d: %v", slot, err)
		}
		if len(keys) == 0 {
			break
		}
		c.clusterDo(t, fromAddr, append([]string{"MIGRATE", host, port, "", "0", "10000", "KEYS"}, keys...)...)
	}
	c.clusterDo(t, toAddr, "CLUSTER", "SETSLOT", s, "NODE", to.id)
	c.clusterDo(t, fromAddr, "CLUSTER", "SETSLOT", s, "NODE", to.id)
	for _, addr := range c.liveMembers(v, true) {
		if addr != toAddr && addr != fromAddr {
			c.clusterDo(t, addr, "CLUSTER", "SETSLOT", s, "NODE", to.id)
		}
	}
	c.waitSettled(t, fmt.Sprintf("slot %d owned by %s everywhere", slot, toAddr), func(v clusterView) error {
		if v.owner(slot) != toAddr {
			return fmt.Errorf("slot %d is still %s's", slot, v.owner(slot))
		}
		return nil
	})
}

// AddMaster starts one more node (the cluster's redisArgs too), joins it
// with CLUSTER MEET, and waits until every node knows it. It owns no slots
// yet: give it some with MoveSlot.
func (c *Cluster) AddMaster(t testing.TB) string {
	t.Helper()
	live := c.liveAddrs()
	if len(live) == 0 {
		t.Fatal("cluster: no live node to meet")
	}
	m, err := startClusterMember(c.args)
	if err != nil {
		t.Fatal(err)
	}
	c.adopt(m)
	addr := m.srv.Addr()
	// The new node meets every node itself: gossip would take seconds.
	for _, other := range live {
		host, port, _ := strings.Cut(other, ":")
		c.clusterDo(t, addr, "CLUSTER", "MEET", host, port, strconv.Itoa(c.member(t, other).bus))
	}
	c.waitSettled(t, addr+" known to every node", nil)
	return addr
}
