package streams

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the core's Prometheus collectors: topics, pipelines, the
// events they carry and how subscribers resume.
type Metrics struct {
	Topics           prometheus.Gauge
	TopicsEvicted    prometheus.Counter
	TopicsRefused    prometheus.Counter
	PipelinesStarted prometheus.Counter
	OperatorErrors   *prometheus.CounterVec
	EventsIn         *prometheus.CounterVec
	FramesOut        prometheus.Counter
	Replayed         prometheus.Counter
	Resets           *prometheus.CounterVec
	Healed           prometheus.Counter
	// PositionsUnencodable counts frames of combined streams sent without
	// a resumable position (positions.go).
	PositionsUnencodable prometheus.Counter
}

// NewMetrics creates the collectors, registered with reg unless it is nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Topics: f.NewGauge(prometheus.GaugeOpts{
			Name: "keyflux_streams_active",
			Help: "Distinct live streams (topics), each one rxgo pipeline shared by its clients.",
		}),
		TopicsEvicted: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_streams_evicted_total",
			Help: "Lingering streams released before their linger ended, to stay under --max-topics.",
		}),
		TopicsRefused: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_streams_refused_total",
			Help: "New streams refused (503) because --max-topics streams were live, all with clients.",
		}),
		PipelinesStarted: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_pipelines_started_total",
			Help: "Stream pipelines started; clients with equal specs share one.",
		}),
		OperatorErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_operator_errors_total",
			Help: "Events a filter or map expression failed on (a filter failing drops the event).",
		}, []string{"op"}),
		EventsIn: f.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_events_in_total",
			Help: "Events received from Redis, after the stream's filters, by source.",
		}, []string{"source"}),
		FramesOut: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_frames_out_total",
			Help: "Encoded frames handed to client queues (one per event per client).",
		}),
		Replayed: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_replayed_frames_total",
			Help: "Frames replayed to clients resuming with Last-Event-ID.",
		}),
		Resets: f.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_resets_total",
			Help: "Reset events sent, by reason.",
		}, []string{"reason"}),
		Healed: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_snapshots_sent_total",
			Help: "Fresh snapshots sent to clients of state streams instead of a replay or reset.",
		}),
		PositionsUnencodable: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_positions_unencodable_total",
			Help: "Events of combined streams over journals sent without an id, their position being longer than 128 bytes (or an id not a Redis entry id).",
		}),
	}
}
