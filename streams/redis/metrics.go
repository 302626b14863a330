package redis

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the adapter's Prometheus collectors: what Keyflux holds in
// Redis and what Redis costs it.
type Metrics struct {
	Upstream prometheus.Gauge
	Dropped  prometheus.Counter
	KeyReads prometheus.Counter
}

// NewMetrics creates the collectors, registered with reg unless it is nil.
// inv, when not nil, is reported too (invalidations and watched keys).
func NewMetrics(reg prometheus.Registerer, inv *Invalidations) *Metrics {
	f := promauto.With(reg)
	if inv != nil {
		f.NewCounterFunc(prometheus.CounterOpts{
			Name: "keyflux_invalidations_total",
			Help: "Client-side caching invalidations received from Redis (keys; a flush or reconnect counts one).",
		}, func() float64 { return float64(inv.Received()) })
		f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyflux_watched_keys",
			Help: "KeyWatches with a live watch (one upstream each, however many clients).",
		}, func() float64 { return float64(inv.Watched()) })
	}
	return &Metrics{
		Upstream: f.NewGauge(prometheus.GaugeOpts{
			Name: "keyflux_upstream_subscriptions",
			Help: "Redis SUBSCRIBE/PSUBSCRIBE subscriptions held, each shared by every stream that needs it.",
		}),
		Dropped: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_upstream_dropped_total",
			Help: "Redis messages dropped because a stream's pipeline fell behind (each causes a reset).",
		}),
		KeyReads: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_key_reads_total",
			Help: "Round trips to Redis reading key values (client-side cache misses and uncached reads).",
		}),
	}
}

// unregistered serves parts built without metrics.
var unregistered = NewMetrics(nil, nil)

// orUnregistered is m, or collectors nobody reads when m is nil.
func orUnregistered(m *Metrics) *Metrics {
	if m == nil {
		return unregistered
	}
	return m
}

// nodeCollector reports keyflux_redis_node_subscriptions for every node of
// the layout: a master's subscriptions, and 0 for a replica.
type nodeCollector struct {
	c    *ClusterUpstreams
	desc *prometheus.Desc
}

func newNodeCollector(c *ClusterUpstreams) *nodeCollector {
	return &nodeCollector{c: c, desc: prometheus.NewDesc("keyflux_redis_node_subscriptions",
		"Redis subscriptions Keyflux holds on each cluster node (replicas hold none).",
		[]string{"node", "role"}, nil)}
}

func (n *nodeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- n.desc }

func (n *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	subs := n.c.Subscriptions()
	for _, s := range n.c.Topology.Layout().Shards {
		ch <- prometheus.MustNewConstMetric(n.desc, prometheus.GaugeValue, float64(subs[s.Master]), s.Master, "master")
		for _, r := range s.Replicas {
			ch <- prometheus.MustNewConstMetric(n.desc, prometheus.GaugeValue, 0, r, "replica")
		}
	}
}
