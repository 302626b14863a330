package sse

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the sink's Prometheus collectors: open streams and slow consumers.
type Metrics struct {
	Clients       prometheus.Gauge
	SlowConsumers *prometheus.CounterVec
	// Writes counts the writes that carried frames to clients: against
	// keyflux_frames_out_total, how many frames a write carries.
	Writes prometheus.Counter
	// queued is the bytes of frames queued or being written for all
	// clients: the sink's budget counter, exported as keyflux_queued_bytes.
	queued atomic.Int64
}

// NewMetrics creates the collectors, registered with reg unless it is nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Clients: f.NewGauge(prometheus.GaugeOpts{
			Name: "keyflux_clients_connected",
			Help: "Open SSE streams.",
		}),
		Writes: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_client_writes_total",
			Help: "Writes (writev system calls) that carried frames to clients; frames out per write is the batching, see --coalesce.",
		}),
		SlowConsumers: f.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_slow_consumers_total",
			Help: "Clients whose queue overflowed, by what was done: disconnect or reset.",
		}, []string{"policy"}),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keyflux_queued_bytes",
		Help: "Bytes of frames queued or being written for all clients together (bounded by --max-queued-bytes).",
	}, func() float64 { return float64(m.queued.Load()) })
	return m
}
