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

// JournalMetrics report the journals (journal.go).
type JournalMetrics struct {
	Writer   *prometheus.GaugeVec
	Appended prometheus.Counter
	Resets   *prometheus.CounterVec
	Acquired prometheus.Counter
}

// NewJournalMetrics creates the collectors, registered with reg unless it is nil.
func NewJournalMetrics(reg prometheus.Registerer) *JournalMetrics {
	f := promauto.With(reg)
	return &JournalMetrics{
		Writer: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyflux_journal_writer",
			Help: "1 for each journal this process writes (holds the lease of), 0 for those it only reads.",
		}, []string{"journal"}),
		Appended: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_journal_appended_total",
			Help: "Entries this process appended to journals, resets included.",
		}),
		Resets: f.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_journal_resets_total",
			Help: "Reset entries this process appended to journals, by reason.",
		}, []string{"reason"}),
		Acquired: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_journal_leases_acquired_total",
			Help: "Times this process became a journal's writer.",
		}),
	}
}

var unregisteredJournal = NewJournalMetrics(nil)

func orUnregisteredJournal(m *JournalMetrics) *JournalMetrics {
	if m == nil {
		return unregisteredJournal
	}
	return m
}
