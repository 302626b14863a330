package streams

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the hub's Prometheus collectors.
type Metrics struct {
	Topics           prometheus.Gauge
	Upstream         prometheus.Gauge
	PipelinesStarted prometheus.Counter
	OperatorErrors   *prometheus.CounterVec
	EventsIn         *prometheus.CounterVec
	FramesOut        prometheus.Counter
	Replayed         prometheus.Counter
	Resets           *prometheus.CounterVec
	Dropped          prometheus.Counter
	Healed           prometheus.Counter
	KeyReads         prometheus.Counter
}

// unregistered serves parts built without metrics.
var unregistered = NewMetrics(nil)

// orUnregistered is m, or collectors nobody reads when m is nil.
func orUnregistered(m *Metrics) *Metrics {
	if m == nil {
		return unregistered
	}
	return m
}

// NewMetrics creates the hub's collectors and registers them with reg when
// reg is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Topics: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyflux_streams_active",
			Help: "Distinct live streams (topics), each one rxgo pipeline shared by its clients.",
		}),
		Upstream: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyflux_upstream_subscriptions",
			Help: "Redis SUBSCRIBE/PSUBSCRIBE subscriptions held, each shared by every stream that needs it.",
		}),
		PipelinesStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_pipelines_started_total",
			Help: "Stream pipelines started; clients with equal specs share one.",
		}),
		OperatorErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_operator_errors_total",
			Help: "Events a filter or map expression failed on (a filter failing drops the event).",
		}, []string{"op"}),
		EventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_events_in_total",
			Help: "Events received from Redis, after the stream's filters, by source.",
		}, []string{"source"}),
		FramesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_frames_out_total",
			Help: "Encoded frames handed to client queues (one per event per client).",
		}),
		Replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_replayed_frames_total",
			Help: "Frames replayed to clients resuming with Last-Event-ID.",
		}),
		Resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_resets_total",
			Help: "Reset events sent, by reason.",
		}, []string{"reason"}),
		Healed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_snapshots_sent_total",
			Help: "Fresh snapshots sent to clients of state streams instead of a replay or reset.",
		}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_upstream_dropped_total",
			Help: "Redis messages dropped because a stream's pipeline fell behind (each causes a reset).",
		}),
		KeyReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_key_reads_total",
			Help: "Round trips to Redis reading key values (client-side cache misses and uncached reads).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Topics, m.Upstream, m.PipelinesStarted, m.OperatorErrors, m.EventsIn, m.FramesOut, m.Replayed, m.Resets, m.Healed, m.Dropped, m.KeyReads)
	}
	return m
}
