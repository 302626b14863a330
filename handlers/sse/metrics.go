package sse

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the sink's Prometheus collectors: open streams and slow consumers.
type Metrics struct {
	Clients       prometheus.Gauge
	SlowConsumers *prometheus.CounterVec
}

// NewMetrics creates the collectors, registered with reg unless it is nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Clients: f.NewGauge(prometheus.GaugeOpts{
			Name: "keyflux_clients_connected",
			Help: "Open SSE streams.",
		}),
		SlowConsumers: f.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_slow_consumers_total",
			Help: "Clients whose queue overflowed, by what was done: disconnect or reset.",
		}, []string{"policy"}),
	}
}
