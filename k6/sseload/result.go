package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"time"
)

// fanoutResult is a fanout run's figures as -json writes them: one flat
// object, one field a line, so that a shell script can read a field with
// grep or awk as well as with jq. Latencies and CPU costs are in
// microseconds. A CPU figure that could not be read is null, with the
// reason in the matching _error field.
type fanoutResult struct {
	Mode    string `json:"mode"`
	URL     string `json:"url"`
	Redis   string `json:"redis"`
	Clients int    `json:"clients"`
	// Connected streams; only they are expected to receive events.
	Connected int `json:"connected"`
	Stalled   int `json:"stalled"`

	EPSAsked    float64 `json:"eps_asked"`
	Sent        int     `json:"events_sent"`
	WriteErrors int     `json:"write_errors"`
	SendSeconds float64 `json:"send_seconds"`
	EPSAchieved float64 `json:"eps_achieved"`
	// The CPU window: from just before the first SET until deliveries
	// stopped (all arrived, or none for -drain).
	WindowSeconds float64 `json:"window_seconds"`

	Expected      int64   `json:"deliveries_expected"`
	Delivered     int64   `json:"deliveries"`
	Lost          int64   `json:"lost"`
	Duplicates    int64   `json:"duplicates"`
	DeliveryRatio float64 `json:"delivery_ratio"`
	Resets        int64   `json:"resets"`
	Dropped       int     `json:"streams_dropped"`
	Foreign       int64   `json:"foreign"`
	BadData       int64   `json:"bad_data"`

	latencyFigures

	ServerCPUSource      string   `json:"keyflux_cpu_source"`
	ServerCPUSeconds     *float64 `json:"keyflux_cpu_seconds"`
	ServerCPUPerDelivery *float64 `json:"keyflux_cpu_us_per_delivery"`
	ServerCPUPercent     *float64 `json:"keyflux_cpu_percent"`
	ServerCPUError       string   `json:"keyflux_cpu_error,omitempty"`
	RedisCPUSeconds      *float64 `json:"redis_cpu_seconds"`
	RedisCPUPerEvent     *float64 `json:"redis_cpu_us_per_event"`
	RedisCPUPercent      *float64 `json:"redis_cpu_percent"`
	RedisCPUError        string   `json:"redis_cpu_error,omitempty"`

	// What else used the machine's CPUs in the window: this tool (whose
	// readers parse every delivery), every other process (the machine's
	// busy time less the server's, its Redis's and this tool's), and the
	// one-minute load average at its end, next to the number of CPUs.
	// Other processes busy, or a load above the CPUs, put waiting for a
	// CPU into the latencies and make the CPU figures vary (a server that
	// falls behind writes several frames per system call).
	LoadToolCPUPercent *float64 `json:"sseload_cpu_percent"`
	OtherCPUPercent    *float64 `json:"other_cpu_percent"`
	LoadAvg            *float64 `json:"loadavg_1m"`
	CPUs               int      `json:"cpus"`

	// With -baseline: the idle rates (every stream open, nothing
	// written), and the costs above less that rate over the window.
	BaselineSeconds         float64  `json:"baseline_seconds"`
	ServerIdlePercent       *float64 `json:"keyflux_idle_cpu_percent"`
	ServerCPUPerDeliveryNet *float64 `json:"keyflux_cpu_us_per_delivery_net"`
	RedisIdlePercent        *float64 `json:"redis_idle_cpu_percent"`
	RedisCPUPerEventNet     *float64 `json:"redis_cpu_us_per_event_net"`

	// OK is the run's verdict: every stream connected and stayed, every
	// delivery arrived, every SET succeeded, every stalled stream was cut
	// off, and it was not interrupted.
	OK bool `json:"ok"`
}

// latencyFigures are a run's delivery latencies in its JSON (fanout's and bench's).
type latencyFigures struct {
	LatencySamples uint64  `json:"latency_samples"`
	LatencyP50     float64 `json:"latency_p50_us"`
	LatencyP90     float64 `json:"latency_p90_us"`
	LatencyP99     float64 `json:"latency_p99_us"`
	LatencyP999    float64 `json:"latency_p999_us"`
	LatencyMax     float64 `json:"latency_max_us"`
}

// setLatency fills the latency fields from h.
func (r *latencyFigures) setLatency(h *histogram) {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	r.LatencySamples = h.n.Load()
	r.LatencyP50, r.LatencyP90, r.LatencyP99 = us(h.quantile(0.5)), us(h.quantile(0.9)), us(h.quantile(0.99))
	r.LatencyP999, r.LatencyMax = us(h.quantile(0.999)), us(h.maxLatency())
}

// setCPU fills the CPU fields from what the window cost.
func (r *fanoutResult) setCPU(c cpuCost, source string, window time.Duration) {
	r.ServerCPUSource = source
	pct := func(d time.Duration) *float64 { return ptr(100 * d.Seconds() / window.Seconds()) }
	if c.serverErr != nil {
		r.ServerCPUError = c.serverErr.Error()
	} else {
		r.ServerCPUSeconds = ptr(c.server.Seconds())
		r.ServerCPUPerDelivery = ptr(perUnit(c.server, r.Delivered))
		r.ServerCPUPercent = pct(c.server)
	}
	if c.selfErr == nil {
		r.LoadToolCPUPercent = pct(c.self)
	}
	if c.machineErr == nil && c.selfErr == nil && c.serverErr == nil && c.redisErr == nil {
		r.OtherCPUPercent = pct(max(c.machine-c.self-c.server-c.redis, 0))
	}
	r.CPUs = runtime.NumCPU()
	if l, err := readLoadAvg(); err == nil {
		r.LoadAvg = ptr(l)
	}
	if c.redisErr != nil {
		r.RedisCPUError = c.redisErr.Error()
	} else {
		r.RedisCPUSeconds = ptr(c.redis.Seconds())
		r.RedisCPUPerEvent = ptr(perUnit(c.redis, int64(r.Sent)))
		r.RedisCPUPercent = pct(c.redis)
	}
}

// setBaseline fills the idle fields: idle is what took cost with nothing
// written, cost what the window cost.
func (r *fanoutResult) setBaseline(idle cpuCost, took time.Duration, cost cpuCost, window time.Duration) {
	r.BaselineSeconds = took.Seconds()
	if idle.serverErr == nil && cost.serverErr == nil {
		r.ServerIdlePercent = ptr(100 * idle.server.Seconds() / took.Seconds())
		r.ServerCPUPerDeliveryNet = ptr(netPerUnit(cost.server, idle.server, took, window, r.Delivered))
	}
	if idle.redisErr == nil && cost.redisErr == nil {
		r.RedisIdlePercent = ptr(100 * idle.redis.Seconds() / took.Seconds())
		r.RedisCPUPerEventNet = ptr(netPerUnit(cost.redis, idle.redis, took, window, int64(r.Sent)))
	}
}

// netPerUnit is what n units cost in microseconds each, beyond the idle
// rate: cost over window, less idle over idleTook scaled to the window.
// It may come out negative when the work costs less than the noise in the
// idle reading.
func netPerUnit(cost, idle, idleTook, window time.Duration, n int64) float64 {
	if idleTook <= 0 {
		return perUnit(cost, n)
	}
	idleInWindow := time.Duration(float64(idle) * float64(window) / float64(idleTook))
	return perUnit(cost-idleInWindow, n)
}

func ptr(v float64) *float64 { return &v }

// costLine is the text report's line for the CPU fields.
func (r *fanoutResult) costLine() string {
	server := "Keyflux CPU unavailable: " + r.ServerCPUError
	if r.ServerCPUSeconds != nil {
		server = fmt.Sprintf("Keyflux %.2f CPU-s (%.0f%% of one core, from %s) = %.3f µs per delivery",
			*r.ServerCPUSeconds, *r.ServerCPUPercent, r.ServerCPUSource, *r.ServerCPUPerDelivery)
	}
	redis := "Redis CPU unavailable: " + r.RedisCPUError
	if r.RedisCPUSeconds != nil {
		redis = fmt.Sprintf("Redis %.3f CPU-s (%.0f%%, INFO cpu) = %.2f µs per SET and its keyspace event",
			*r.RedisCPUSeconds, *r.RedisCPUPercent, *r.RedisCPUPerEvent)
	}
	line := fmt.Sprintf("CPU over %.1fs of writing and delivering: %s; %s\n", r.WindowSeconds, server, redis)
	line += fmt.Sprintf("machine: sseload %s of one core, other processes %s, load average %s on %d CPUs\n",
		pctOf(r.LoadToolCPUPercent), pctOf(r.OtherCPUPercent), numOf(r.LoadAvg, 2), r.CPUs)
	if r.BaselineSeconds > 0 {
		line += fmt.Sprintf("idle CPU over %.1fs with nothing written: Keyflux %s, Redis %s; net of it: %s µs per delivery, %s µs per event\n",
			r.BaselineSeconds, pctOf(r.ServerIdlePercent), pctOf(r.RedisIdlePercent),
			numOf(r.ServerCPUPerDeliveryNet, 3), numOf(r.RedisCPUPerEventNet, 2))
	}
	return line
}

func pctOf(v *float64) string {
	if v == nil {
		return "?"
	}
	return fmt.Sprintf("%.1f%%", *v)
}

func numOf(v *float64, decimals int) string {
	if v == nil {
		return "?"
	}
	return fmt.Sprintf("%.*f", decimals, *v)
}

// writeJSON writes r to path, indented, one field a line.
func (r *fanoutResult) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("-json: %w", err)
	}
	return nil
}
