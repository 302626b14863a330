package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// readRSS returns the resident set size of process pid in KiB, from the
// VmRSS line of /proc/<pid>/status. RSS, not the Go heap, is the figure
// that decides how many streams fit on a machine: it includes the runtime,
// goroutine stacks, socket-side allocations in user space and GC slack.
func readRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "123456 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: unexpected VmRSS line %q", pid, sc.Text())
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS line (is it a zombie?)", pid)
}

// serverMetrics are the samples of the server's /metrics that a run
// reports: the stream count proves the streams are open, the rest explain
// where the memory and CPU went. A metric with labels is kept both as the
// sum of its series, under its bare name, and per series, under its full
// name with the labels (keyflux_slow_consumers_total{policy="disconnect"}).
type serverMetrics map[string]float64

const (
	metricClients    = "keyflux_clients_connected"
	metricGoroutines = "go_goroutines"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricCPU        = "process_cpu_seconds_total"
	metricFramesOut  = "keyflux_frames_out_total"
	metricSlow       = "keyflux_slow_consumers_total"
	metricDropped    = "keyflux_upstream_dropped_total"
	metricTopics     = "keyflux_streams_active"
	metricUpstream   = "keyflux_upstream_subscriptions"
	metricRSS        = "process_resident_memory_bytes"
)

var wantedMetrics = []string{
	metricClients, metricGoroutines, metricHeapInuse, metricCPU,
	metricFramesOut, metricSlow, metricDropped, metricTopics, metricUpstream, metricRSS,
}

// scrapeMetrics reads the wanted samples from the Prometheus text at url.
// A line scan is enough: a sample is "name value" or "name{labels} value",
// and the value follows the last space (label values may hold spaces;
// Prometheus' own handler writes no timestamps). That keeps the tool free
// of an exposition-format parser.
func scrapeMetrics(ctx context.Context, url string) (serverMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	m := serverMetrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		series := line[:i]
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name, _, labelled := strings.Cut(series, "{")
		if !slices.Contains(wantedMetrics, name) {
			continue
		}
		m[name] += v
		if labelled {
			m[series] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if _, ok := m[metricClients]; !ok {
		return nil, fmt.Errorf("%s has no %s: is it a Keyflux?", url, metricClients)
	}
	return m, nil
}

// series lists the labelled series of metric name as "labels value",
// sorted, such as {policy="disconnect"} 1.
func (m serverMetrics) series(name string) []string {
	var out []string
	for s, v := range m {
		if labels, ok := strings.CutPrefix(s, name+"{"); ok {
			out = append(out, "{"+labels+" "+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	slices.Sort(out)
	return out
}

// kib formats a KiB amount for people.
func kib(k float64) string {
	if k >= 10*1024 || k <= -10*1024 {
		return strconv.FormatFloat(k/1024, 'f', 1, 64) + " MiB"
	}
	return strconv.FormatFloat(k, 'f', 1, 64) + " KiB"
}
