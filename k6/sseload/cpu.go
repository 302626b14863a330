package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// clockTicks is the unit of utime and stime in /proc/<pid>/stat
// (sysconf(_SC_CLK_TCK)). It is 100 on every Linux Go supports: the
// kernel's USER_HZ is fixed by its ABI, whatever its internal HZ.
// Prometheus' process collector, which fills process_cpu_seconds_total,
// assumes the same.
const clockTicks = 100

// readProcCPU is the CPU time, user and system, that process pid and all
// its threads have used so far, from /proc/<pid>/stat.
func readProcCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	d, err := parseProcStat(string(raw))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return d, nil
}

// parseProcStat reads utime and stime, fields 14 and 15 of a
// /proc/<pid>/stat line. The second field, the command name in
// parentheses, may itself hold spaces and parentheses, so the fields are
// counted from the last ')' on: the first after it is field 3 (state).
func parseProcStat(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name in parentheses")
	}
	fields := strings.Fields(stat[i+1:])
	const utime = 14 - 3 // index of field 14 among the fields after the name
	if len(fields) <= utime+1 {
		return 0, fmt.Errorf("%d fields after the command name, want at least %d", len(fields), utime+2)
	}
	var ticks int64
	for _, f := range fields[utime : utime+2] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("utime or stime %q is not a tick count", f)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// readRedisCPU is the CPU time, user and system, that the Redis server
// behind rdb has used since it started, from INFO cpu (getrusage of the
// whole process, every thread, to the microsecond). Forked children (a
// BGSAVE) are counted apart by Redis and left out.
func readRedisCPU(ctx context.Context, rdb rueidis.Client) (time.Duration, error) {
	info, err := rdb.Do(ctx, rdb.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		return 0, fmt.Errorf("INFO cpu: %w", err)
	}
	d, err := parseInfoCPU(info)
	if err != nil {
		return 0, fmt.Errorf("INFO cpu: %w", err)
	}
	return d, nil
}

// parseInfoCPU adds used_cpu_sys and used_cpu_user (seconds, with six
// decimals) of an INFO cpu reply; both must be present.
func parseInfoCPU(info string) (time.Duration, error) {
	var sum time.Duration
	found := 0
	for line := range strings.Lines(info) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "used_cpu_sys" && name != "used_cpu_user") {
			continue
		}
		s, err := strconv.ParseFloat(value, 64)
		if err != nil || s < 0 {
			return 0, fmt.Errorf("%s %q is not a number of seconds", name, value)
		}
		sum += time.Duration(s * float64(time.Second))
		found++
	}
	if found != 2 {
		return 0, errors.New("no used_cpu_sys and used_cpu_user")
	}
	return sum, nil
}

// cpuClock reads the CPU time the server and its Redis have used, so a
// run can say what its writes and deliveries cost each: the server's from
// /proc/<pid>/stat when -pid is given, else process_cpu_seconds_total of
// its /metrics (the same figure, read by the server itself); the Redis's
// from INFO cpu.
type cpuClock struct {
	pid        int
	metricsURL string
	rdb        rueidis.Client
}

// cpuReading is one reading of both, and of this tool's own CPU time,
// which shares the machine with them; an error leaves its figure out.
type cpuReading struct {
	server, redis, self, machine             time.Duration
	serverErr, redisErr, selfErr, machineErr error
}

// source names where the server's figure comes from.
func (c cpuClock) source() string {
	if c.pid > 0 {
		return "/proc/" + strconv.Itoa(c.pid) + "/stat"
	}
	return metricCPU + " of /metrics"
}

func (c cpuClock) read(ctx context.Context) cpuReading {
	var r cpuReading
	if c.pid > 0 {
		r.server, r.serverErr = readProcCPU(c.pid)
	} else {
		m, err := scrapeMetrics(ctx, c.metricsURL)
		if err == nil {
			v, ok := m[metricCPU]
			if !ok {
				err = errors.New("/metrics has no " + metricCPU)
			}
			r.server = time.Duration(v * float64(time.Second))
		}
		r.serverErr = err
	}
	r.redis, r.redisErr = readRedisCPU(ctx, c.rdb)
	r.self, r.selfErr = readProcCPU(os.Getpid())
	r.machine, r.machineErr = readMachineBusy()
	return r
}

// cpuCost is what a stretch of a run cost the server, its Redis and this
// tool.
type cpuCost struct {
	server, redis, self, machine             time.Duration
	serverErr, redisErr, selfErr, machineErr error
}

// since is the CPU used between before and r; a reading that failed at
// either end leaves its error.
func (r cpuReading) since(before cpuReading) cpuCost {
	return cpuCost{
		server:     r.server - before.server,
		redis:      r.redis - before.redis,
		self:       r.self - before.self,
		machine:    r.machine - before.machine,
		serverErr:  errors.Join(before.serverErr, r.serverErr),
		redisErr:   errors.Join(before.redisErr, r.redisErr),
		selfErr:    errors.Join(before.selfErr, r.selfErr),
		machineErr: errors.Join(before.machineErr, r.machineErr),
	}
}

// perUnit is d divided by n, in microseconds, or 0 without units.
func perUnit(d time.Duration, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return float64(d) / float64(time.Microsecond) / float64(n)
}

// readMachineBusy is the CPU time every CPU of the machine has spent
// busy (neither idle nor waiting for I/O) since boot, from the first line
// of /proc/stat. Less the server's, its Redis's and this tool's, it is
// what other processes took from the run.
func readMachineBusy() (time.Duration, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	d, err := parseMachineBusy(string(raw))
	if err != nil {
		return 0, fmt.Errorf("/proc/stat: %w", err)
	}
	return d, nil
}

// parseMachineBusy reads the "cpu" line of /proc/stat: user nice system
// idle iowait irq softirq steal guest guest_nice, in clock ticks. Guest
// time is already counted in user and nice, and steal is time the
// hypervisor gave elsewhere, so busy is user+nice+system+irq+softirq.
func parseMachineBusy(stat string) (time.Duration, error) {
	line, _, _ := strings.Cut(stat, "\n")
	fields := strings.Fields(line)
	if len(fields) < 8 || fields[0] != "cpu" {
		return 0, errors.New("no cpu line with at least 7 counters first")
	}
	var ticks int64
	for i, f := range fields[1:8] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("counter %q is not a tick count", f)
		}
		if i != 3 && i != 4 { // idle, iowait
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// readLoadAvg is the machine's one-minute load average, from /proc/loadavg:
// how many runnable processes the run shared the CPUs with, on average.
func readLoadAvg() (float64, error) {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(raw), " ")
	return strconv.ParseFloat(first, 64)
}
