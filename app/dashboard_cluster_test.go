package main

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

// nodeShown is a JavaScript condition: the row matched by sel names node in
// its data-node and in a span.node that is rendered, readable and not
// clipped by the key cell (the key text is what shrinks).
func nodeShown(sel, node string) string {
	return fmt.Sprintf(`(() => {
		const li = document.querySelector(%[1]s);
		const span = li?.querySelector(".k .node");
		if (!span || li.dataset.node !== %[2]s || span.textContent !== %[2]s) return false;
		const r = span.getBoundingClientRect(), k = span.closest(".k").getBoundingClientRect();
		return span.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true }) &&
			r.width > 0 && r.height > 0 && r.left >= k.left - 1 && r.right <= k.right + 1;
	})()`, strconv.Quote(sel), strconv.Quote(node))
}

// On a Redis Cluster each log row names the master that sent its event,
// once per key; a later key on every master fences off any late duplicate
// (each node's events arrive in order).
func TestDashboardClusterRowsNameTheirNode(t *testing.T) {
	cl := testkit.StartCluster(t, 3, 0)
	k := startKeyfluxCluster(t, cl)
	p := openDashboard(t, k, 1280, 900)
	p.subscribe("dn:*", "")

	masters := cl.Masters(t)
	if len(masters) != 3 {
		t.Fatalf("masters %v, want 3", masters)
	}
	keys := make([]string, len(masters))
	for i, m := range masters {
		keys[i] = cl.KeyOn(t, m, "dn:a:")
		k.do("SET", keys[i], "v")
	}
	for i, m := range masters {
		p.waitFor(nodeShown(row("set", keys[i]), m), "the row of "+keys[i]+" naming "+m)
	}
	for i, m := range masters {
		fence := cl.KeyOn(t, m, "dn:z:")
		k.do("SET", fence, "v")
		p.waitFor(nodeShown(row("set", fence), m), "the fence row of "+fence)
		if n := eval[int](p, count(row("set", keys[i]))); n != 1 {
			t.Fatalf("%d rows for %s, want 1\n%s", n, keys[i], p.debug())
		}
	}
	if n := eval[int](p, count("#log li.event")); n != 2*len(masters) {
		t.Fatalf("%d rows, want %d\n%s", n, 2*len(masters), p.debug())
	}
	if n := eval[int](p, count("#log li.event:not([data-node])")); n != 0 {
		t.Fatalf("%d cluster rows without a node", n)
	}
}

// A single Redis sends no node: its rows carry neither data-node nor a
// span.node, and look as they did before cluster support.
func TestDashboardSingleNodeRowsNameNoNode(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	p := openDashboard(t, k, 1280, 900)
	p.subscribe("dn:*", "")
	k.do("SET", "dn:1", "v")
	p.waitFor(has(row("set", "dn:1")), "the row of dn:1")
	if n := eval[int](p, count("#log li[data-node], #log .node")); n != 0 {
		t.Fatalf("%d elements name a node on a single Redis\n%s", n, p.debug())
	}
}
