package testkit

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams/redis/redisserver"
)

// RueidisLateCloser is the goroutine a rueidis cluster client starts when a
// node leaves the topology (after Kill): it closes that node's connections
// 5 s later, even after Close. It ends by itself, so a package whose tests
// kill cluster nodes tells goleak to ignore it:
// goleak.IgnoreAnyFunction(testkit.RueidisLateCloser).
const RueidisLateCloser = "github.com/redis/rueidis.(*clusterClient)._refresh.func2"

// RueidisLateRefresh is the goroutine a rueidis cluster client starts to
// refresh its slot map after a delay (up to about a second) when a node
// failed it; it sleeps that delay even after Close, then ends by itself.
// Packages that ignore RueidisLateCloser ignore it too.
const RueidisLateRefresh = "github.com/redis/rueidis.(*call).DelayDo.func1"

// Cluster is a local Redis Cluster of private redis-server processes, each
// stopped by pid when the test that started it ends.
type Cluster struct {
	owner testing.TB // the test that started it: every node lives as long
	args  []string   // the test's extra directives, for AddMaster
	mu    sync.Mutex
	nodes []*clusterMember
}

type clusterMember struct {
	srv   *redisserver.Server
	bus   int
	admin rueidis.Client // the helper's own connection, never a test's
	dead  bool
}

// StartCluster starts masters×(1+replicasPerMaster) nodes in parallel, joins
// them with `redis-cli --cluster create`, and returns once every node says
// cluster_state:ok and all agree on the slot map. Redis needs at least 3
// masters. The node timeout is 1 s, so a killed master is replaced in about
// 2 s. redisArgs are extra directives for every node, later ones included.
func StartCluster(t testing.TB, masters, replicasPerMaster int, redisArgs ...string) *Cluster {
	t.Helper()
	if masters < 3 || replicasPerMaster < 0 {
		t.Fatalf("cluster: redis-cli --cluster create needs 3 masters or more (asked %d, %d replicas each)", masters, replicasPerMaster)
	}
	c := &Cluster{owner: t, args: redisArgs}
	n := masters * (1 + replicasPerMaster)
	members, errs := make([]*clusterMember, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range members {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			members[i], errs[i] = startClusterMember(redisArgs)
		}(i)
	}
	wg.Wait()
	addrs := make([]string, 0, n)
	for _, m := range members {
		if m != nil {
			c.adopt(m)
			addrs = append(addrs, m.srv.Addr())
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Joining takes seconds; a machine busy with a whole test suite (and
	// browsers) has been seen to need most of a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	cli := exec.CommandContext(ctx, "/usr/bin/redis-cli", args...) // stdin is /dev/null: never prompts
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("cluster: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	c.WaitOK(t)
	return c
}

// startClusterMember starts one cluster-enabled node. Its bus port is picked
// free like its client port (port+10000 may not exist); a port taken in the
// meantime by someone else gets one more try.
func startClusterMember(redisArgs []string) (*clusterMember, error) {
	var lastErr error
	for try := 0; try < 3; try++ {
		bus, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		args := append([]string{
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", "nodes.conf", // in the node's own temporary folder
			"--cluster-node-timeout", "1000",
			// Deterministic roles for tests: no replica wanders to an orphaned
			// master, and a replica always runs for election however long its
			// link was down on a loaded machine.
			"--cluster-allow-replica-migration", "no",
			"--cluster-replica-validity-factor", "0",
			"--repl-diskless-sync-delay", "0", // a replica's first sync waits 5 s otherwise
		}, redisArgs...)
		srv, err := redisserver.Start(context.Background(), args...)
		if err != nil {
			lastErr = err
			continue
		}
		admin, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress: []string{srv.Addr()}, ForceSingleClient: true, DisableCache: true,
		})
		if err != nil {
			srv.Stop()
			return nil, err
		}
		return &clusterMember{srv: srv, bus: bus, admin: admin}, nil
	}
	return nil, fmt.Errorf("cluster: starting a node: %w", lastErr)
}

// adopt makes m a node, stopped when the cluster's test ends (not the
// subtest that added it).
func (c *Cluster) adopt(m *clusterMember) {
	c.mu.Lock()
	c.nodes = append(c.nodes, m)
	c.mu.Unlock()
	c.owner.Cleanup(func() {
		m.admin.Close()
		m.srv.Stop()
	})
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) liveAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.nodes {
		if !m.dead {
			out = append(out, m.srv.Addr())
		}
	}
	return out
}

func (c *Cluster) member(t testing.TB, addr string) *clusterMember {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.nodes {
		if m.srv.Addr() == addr && !m.dead {
			return m
		}
	}
	t.Fatalf("cluster: no live node %s", addr)
	return nil
}

// admin is the helper's connection to a node it knows to be live.
func (c *Cluster) admin(addr string) rueidis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.nodes {
		if m.srv.Addr() == addr {
			return m.admin
		}
	}
	panic("cluster: unknown node " + addr)
}

// URL is a rueidis URL naming every live node:
// redis://a?addr=b&addr=c...
func (c *Cluster) URL() string {
	live := c.liveAddrs()
	if len(live) == 0 {
		return ""
	}
	u := "redis://" + live[0]
	for i, addr := range live[1:] {
		if i == 0 {
			u += "?addr=" + addr
		} else {
			u += "&addr=" + addr
		}
	}
	return u
}

// Client is a cluster client (no client-side cache) of the test's own,
// closed when the test ends.
func (c *Cluster) Client(t testing.TB) rueidis.Client {
	t.Helper()
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.liveAddrs(), DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// NodeClient is a client of one node only (no redirections followed, no
// client-side cache), closed when the test ends.
func (c *Cluster) NodeClient(t testing.TB, addr string) rueidis.Client {
	t.Helper()
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Masters are the live masters now (slot-less ones included), sorted.
func (c *Cluster) Masters(t testing.TB) []string {
	t.Helper()
	return c.liveMembers(c.view(t), true)
}

// Replicas are the live replicas now, sorted.
func (c *Cluster) Replicas(t testing.TB) []string {
	t.Helper()
	return c.liveMembers(c.view(t), false)
}

// ReplicasOf are the live replicas of one master now, sorted.
func (c *Cluster) ReplicasOf(t testing.TB, masterAddr string) []string {
	t.Helper()
	v := c.view(t)
	var out []string
	for _, addr := range c.liveMembers(v, false) {
		if v[addr].masterAddr == masterAddr {
			out = append(out, addr)
		}
	}
	return out
}

// KeyOn is prefix followed by the first decimal suffix that puts the key in
// a slot masterAddr owns now. A prefix with a hash tag fixes the slot, so it
// fails unless that slot is the master's.
func (c *Cluster) KeyOn(t testing.TB, masterAddr, prefix string) string {
	t.Helper()
	v := c.view(t)
	if n := v[masterAddr]; n == nil || !n.master || len(n.ranges) == 0 {
		t.Fatalf("cluster: %s is not a master owning slots", masterAddr)
	}
	for i := 0; i < 1<<20; i++ {
		key := prefix + strconv.Itoa(i)
		if v.owns(masterAddr, KeySlot(key)) {
			return key
		}
	}
	t.Fatalf("cluster: no key %q+N lands on %s", prefix, masterAddr)
	return ""
}

// WaitOK waits until every live node says cluster_state:ok and all agree on
// who is master, who replicates whom, and who owns which slot.
func (c *Cluster) WaitOK(t testing.TB) {
	t.Helper()
	c.waitSettled(t, "cluster_state:ok and one slot map everywhere", nil)
}
