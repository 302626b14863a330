package handlers

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the sink's Prometheus collectors.
type Metrics struct {
	Clients       prometheus.Gauge
	SlowConsumers *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg when reg is
// not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyflux_clients_connected",
			Help: "Open SSE streams.",
		}),
		SlowConsumers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_slow_consumers_total",
			Help: "Clients whose queue overflowed, by what was done: disconnect or reset.",
		}, []string{"policy"}),
	}
	if reg != nil {
		reg.MustRegister(m.Clients, m.SlowConsumers)
	}
	return m
}
