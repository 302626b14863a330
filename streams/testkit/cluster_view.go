package testkit

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterNodeInfo is one line of CLUSTER NODES as one node sees it.
type clusterNodeInfo struct {
	id, addr   string
	master     bool
	masterAddr string   // a replica's master
	ranges     [][2]int // owned slots, inclusive
	broken     bool     // fail, fail?, handshake or noaddr
	myself     bool
}

// clusterView is one node's map of the cluster, by address.
type clusterView map[string]*clusterNodeInfo

func (v clusterView) owner(slot int) string {
	for addr, n := range v {
		for _, r := range n.ranges {
			if r[0] <= slot && slot <= r[1] {
				return addr
			}
		}
	}
	return ""
}

func (v clusterView) owns(addr string, slot int) bool {
	n := v[addr]
	if n == nil {
		return false
	}
	for _, r := range n.ranges {
		if r[0] <= slot && slot <= r[1] {
			return true
		}
	}
	return false
}

// parseClusterNodes reads CLUSTER NODES: "<id> <ip:port@cport[,host]>
// <flags> <master-id|-> <ping> <pong> <epoch> <link> <slot>...".
func parseClusterNodes(text string) (clusterView, error) {
	text = strings.TrimPrefix(text, "txt:") // RESP3 sends it as a verbatim string
	v := clusterView{}
	byID := map[string]*clusterNodeInfo{}
	masterIDs := map[*clusterNodeInfo]string{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("short CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := &clusterNodeInfo{id: f[0], addr: addr}
		for _, flag := range strings.Split(f[2], ",") {
			switch flag {
			case "master":
				n.master = true
			case "myself":
				n.myself = true
			case "fail", "fail?", "handshake", "noaddr":
				n.broken = true
			}
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") { // a migration in progress, not ownership
				continue
			}
			lo, hi, isRange := strings.Cut(s, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad slot %q in %q", s, line)
			}
			n.ranges = append(n.ranges, [2]int{a, b})
		}
		masterIDs[n] = f[3]
		byID[n.id] = n
		if old := v[addr]; old == nil || old.broken { // a forgotten twin in handshake must not hide the real one
			v[addr] = n
		}
	}
	for n, id := range masterIDs {
		if m := byID[id]; m != nil {
			n.masterAddr = m.addr
		}
	}
	return v, nil
}

// summary renders what must be identical from every node: each live node's
// role, and a master's slots or a replica's master.
func (v clusterView) summary(live []string) (string, error) {
	var b strings.Builder
	for _, addr := range live {
		n := v[addr]
		switch {
		case n == nil:
			return "", fmt.Errorf("does not know %s", addr)
		case n.broken:
			return "", fmt.Errorf("sees %s as failing or not yet joined", addr)
		case n.master:
			fmt.Fprintf(&b, "%s master %v\n", addr, n.ranges)
		default:
			fmt.Fprintf(&b, "%s replica of %s\n", addr, n.masterAddr)
		}
	}
	return b.String(), nil
}

// settled reports whether the cluster is at rest: every live node says
// cluster_state:ok, every replica is linked to its master, every live node's view of the live nodes is the same,
// and live masters cover all 16384 slots. It returns the agreed view, or why
// not (with the first disagreeing view's raw text).
func (c *Cluster) settled(ctx context.Context) (clusterView, error) {
	live := c.liveAddrs()
	var ref clusterView
	var refSummary, refFrom, refText string
	for _, addr := range live {
		admin := c.admin(addr)
		info, err := admin.Do(ctx, admin.B().ClusterInfo().Build()).ToString()
		if err != nil {
			return nil, fmt.Errorf("%s: CLUSTER INFO: %w", addr, err)
		}
		text, err := admin.Do(ctx, admin.B().ClusterNodes().Build()).ToString()
		if err != nil {
			return nil, fmt.Errorf("%s: CLUSTER NODES: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return nil, fmt.Errorf("%s: cluster_state is not ok; its CLUSTER NODES:\n%s", addr, text)
		}
		v, err := parseClusterNodes(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
		s, err := v.summary(live)
		if err != nil {
			return nil, fmt.Errorf("%s %w; its CLUSTER NODES:\n%s", addr, err, text)
		}
		if n := v[addr]; n != nil && n.myself && !n.master {
			repl, err := admin.Do(ctx, admin.B().Info().Section("replication").Build()).ToString()
			if err != nil {
				return nil, fmt.Errorf("%s: INFO replication: %w", addr, err)
			}
			if !strings.Contains(repl, "master_link_status:up") {
				return nil, fmt.Errorf("replica %s is not in sync with its master yet", addr)
			}
		}
		if ref == nil {
			ref, refSummary, refFrom, refText = v, s, addr, text
			continue
		}
		if s != refSummary {
			return nil, fmt.Errorf("%s and %s disagree:\n%s\nagainst\n%s\nCLUSTER NODES of each:\n%s\n%s", refFrom, addr, refSummary, s, refText, text)
		}
	}
	covered := 0
	for _, addr := range live {
		if n := ref[addr]; n.master {
			for _, r := range n.ranges {
				covered += r[1] - r[0] + 1
			}
		}
	}
	if covered != 16384 {
		return nil, fmt.Errorf("live masters own %d of 16384 slots:\n%s", covered, refSummary)
	}
	return ref, nil
}

// waitSettled polls until the cluster is at rest and cond (nil: none) holds
// of the agreed view; a loaded 2-core machine may take seconds. It fails the
// test with the last state it saw.
func (c *Cluster) waitSettled(t testing.TB, what string, cond func(clusterView) error) clusterView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err := c.settled(ctx)
		cancel()
		if err == nil && cond != nil {
			err = cond(v)
		}
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster: timed out waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond) // gossip has no event to await
	}
}

// view is one live node's current map, without waiting for agreement.
func (c *Cluster) view(t testing.TB) clusterView {
	t.Helper()
	live := c.liveAddrs()
	if len(live) == 0 {
		t.Fatal("cluster: no live node")
	}
	var lastErr error
	for _, addr := range live {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		admin := c.admin(addr)
		text, err := admin.Do(ctx, admin.B().ClusterNodes().Build()).ToString()
		cancel()
		if err == nil {
			var v clusterView
			if v, err = parseClusterNodes(text); err == nil {
				return v
			}
		}
		lastErr = fmt.Errorf("%s: %w", addr, err)
	}
	t.Fatalf("cluster: CLUSTER NODES: %v", lastErr)
	return nil
}

// liveMembers lists the live nodes of a view with the given role, sorted.
func (c *Cluster) liveMembers(v clusterView, masters bool) []string {
	var out []string
	for _, addr := range c.liveAddrs() {
		if n := v[addr]; n != nil && !n.broken && n.master == masters {
			out = append(out, addr)
		}
	}
	sort.Strings(out)
	return out
}
