#!/usr/bin/env bash
# What --journal costs (issue 13): Redis CPU per keyspace event, Keyflux CPU
# per delivery, and end-to-end latency, with and without --journal, under
# the same load from the same tool in one run.
#
# It builds keyflux and sseload, then twice (plain, then with
# JOURNAL_FLAGS), ROUNDS times, starts a private redis-server on a free
# loopback port and a fresh keyflux on it, runs
#
#   sseload -mode fanout -clients $CLIENTS -eps $EPS -events $((EPS*DURATION)) -pid <keyflux>
#           -baseline $BASELINE -url .../streams/keyspace?pattern=<prefix>*&events=set -json <file>
#
# (CLIENTS raw-TCP SSE streams, SET <prefix><i> at EPS a second, every
# delivery timed from its SET; CPU of keyflux from /proc/<pid>/stat and of
# Redis from INFO cpu, gross and net of their idle rate) and stops that
# keyflux and its Redis. It prints every JSON result and, per round, the
# journal/plain ratios and the added latency. Everything it starts is
# stopped on exit; the results and logs stay in $OUT. Figures and how to
# read them: docs/performance.md#journal-overhead.
#
# Usage (from anywhere in a clone; needs go and redis-server):
#   k6/journal-overhead.sh
#   CLIENTS=2000 EPS=100 DURATION=30 OUT=/tmp/jo k6/journal-overhead.sh
# Environment:
#   CLIENTS        streams (default 2000)
#   EPS            SETs per second (default 100)
#   DURATION       seconds of writing, the measure window (default 30)
#   RAMP           streams opened per second (default 500)
#   ROUNDS         plain and journal runs, in turn (default 1; 2 or 3 show the noise)
#   BASELINE       idle CPU measured before the writes, to give costs net of it (default 10s)
#   JOURNAL_FLAGS  flags of the second run (default --journal)
#   KEYFLUX_FLAGS  extra flags for both runs
#   KEYFLUX        a keyflux binary to use instead of building ./app
#   NICE           run redis-server, keyflux and sseload under nice -n NICE
#                  (e.g. -10, as root) to shield them from other work on the machine
#   OUT            directory for the logs and results (default: a new temporary one)
# Exit status: 0 every run completed cleanly; 1 a run failed (its JSON, if
# any, says how: "ok": false); 2 setup failed.
set -euo pipefail

CLIENTS=${CLIENTS:-2000}
EPS=${EPS:-100}
DURATION=${DURATION:-30}
RAMP=${RAMP:-500}
ROUNDS=${ROUNDS:-1}
BASELINE=${BASELINE:-10s}
JOURNAL_FLAGS=${JOURNAL_FLAGS:---journal}
KEYFLUX_FLAGS=${KEYFLUX_FLAGS:-}
KEYFLUX=${KEYFLUX:-}
NICE=${NICE:-}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/journal-overhead.XXXXXX")}

cd "$(dirname "$0")/.."
mkdir -p "$OUT"
exec </dev/null

die() {
	echo "journal-overhead: $*" >&2
	exit 2
}

# Each stream is a socket, in keyflux and in sseload alike.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CLIENTS + 256)) ]; then
	die "$CLIENTS streams need about $((CLIENTS + 256)) open files; this shell may have $(ulimit -n)"
fi
command -v redis-server >/dev/null || die "redis-server is not installed (go tool task redis-server)"
niced=()
if [ -n "$NICE" ]; then
	niced=(nice -n "$NICE")
	"${niced[@]}" true || die "nice -n $NICE is not allowed here"
fi

# build_tools, start and stop (k6/procs.sh).
# shellcheck source=k6/procs.sh
source k6/procs.sh # the working directory is the clone's root

# start_redis NAME: a private redis-server on a free port, for one run, so
# that every run starts from the same empty Redis (a journal left by the
# run before would make the next keyflux record a reset). A port is tried
# when nothing answers on it, and another when redis-server still fails to
# bind it. It sets redis_pid, redis_drain and redis_port.
start_redis() {
	local port
	for port in $(shuf -i 20000-59999 -n 20); do
		if (exec 4<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			continue
		fi
		start "$OUT/redis-$1.log" "Ready to accept connections" \
			"${niced[@]}" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --logfile ""
		if [ -n "$found" ]; then
			redis_pid=$started_pid redis_drain=$started_drain redis_port=$port
			return
		fi
		stop "$started_pid" "$started_drain"
	done
	die "no redis-server started (see $OUT/redis-$1.log)"
}

redis_pid="" redis_drain="" kf_pid="" kf_drain=""
cleanup() {
	stop "$kf_pid" "$kf_drain"
	stop "$redis_pid" "$redis_drain"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_tools

echo "machine: $(getconf _NPROCESSORS_ONLN) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)${NICE:+, runs under nice -n $NICE}" >&2
failed=0

# measure NAME FLAGS: a fresh redis-server and keyflux with FLAGS (a word
# list), one sseload run against them, the result in $OUT/NAME.json.
measure() {
	local name=$1 flags=$2 url rc=0
	rm -f "$OUT/$name.json" # a reused OUT must not show an older run's figures
	start_redis "$name"
	# shellcheck disable=SC2086 # the flags are a word list
	start "$OUT/keyflux-$name.log" "keyflux listening" \
		"${niced[@]}" "$KEYFLUX" --listen 127.0.0.1:0 --redis-url "redis://127.0.0.1:$redis_port" \
		--max-clients-per-ip 20000 --stream-rate-per-ip 100000 --stream-burst-per-ip 20000 \
		$KEYFLUX_FLAGS $flags
	kf_pid=$started_pid kf_drain=$started_drain
	if [ -z "$found" ]; then
		stop "$kf_pid" "$kf_drain"
		kf_pid="" kf_drain=""
		echo "journal-overhead: keyflux ${flags:-(no flags)} did not start:" >&2
		tail -n 3 "$OUT/keyflux-$name.log" | sed 's/^/  /' >&2
		failed=1
	else
		url=$(sed -n 's/.*url=\(http:[^ ]*\).*/\1/p' <<<"$found")
		echo "== $name: keyflux $flags at $url (pid $kf_pid), redis-server 127.0.0.1:$redis_port (pid $redis_pid)" >&2
		"${niced[@]}" "$OUT/sseload" -mode fanout -clients "$CLIENTS" -rate "$RAMP" -eps "$EPS" -events $((EPS * DURATION)) \
			-redis "127.0.0.1:$redis_port" -pid "$kf_pid" -baseline "$BASELINE" -json "$OUT/$name.json" -timeout 10m \
			-url "$url/streams/keyspace?pattern=jo-$name:*&events=set" \
			>"$OUT/sseload-$name.txt" 2>"$OUT/sseload-$name.log" || rc=$?
		cat "$OUT/sseload-$name.txt"
		if [ "$rc" != 0 ]; then
			echo "journal-overhead: sseload exited $rc in the $name run (progress in $OUT/sseload-$name.log)" >&2
			failed=1
		fi
		stop "$kf_pid" "$kf_drain"
		kf_pid="" kf_drain=""
	fi
	stop "$redis_pid" "$redis_drain"
	redis_pid="" redis_drain=""
}

# field FILE NAME: a number of sseload's JSON (one field a line), or "".
field() {
	[ -f "$1" ] || return 0
	sed -n "s/^ *\"$2\": \([-0-9.eE+]*\),\{0,1\}$/\1/p" "$1"
}

# compare A B: the figures of runs A and B side by side, and B/A.
compare() {
	local a b f q
	printf '%-32s %12s %12s %14s\n' "$CLIENTS streams x $EPS events/s" "$1" "$2" "ratio"
	for f in keyflux_cpu_us_per_delivery keyflux_cpu_us_per_delivery_net redis_cpu_us_per_event redis_cpu_us_per_event_net \
		keyflux_cpu_percent keyflux_idle_cpu_percent redis_cpu_percent redis_idle_cpu_percent \
		latency_p50_us latency_p99_us latency_max_us delivery_ratio eps_achieved sseload_cpu_percent other_cpu_percent loadavg_1m; do
		a=$(field "$OUT/$1.json" "$f")
		b=$(field "$OUT/$2.json" "$f")
		awk -v n="$f" -v a="$a" -v b="$b" 'BEGIN {
			r = (a != "" && b != "" && a + 0 != 0) ? sprintf("%.2f", b / a) : "-"
			printf "%-32s %12s %12s %14s\n", n, (a == "" ? "-" : sprintf("%.4g", a)), (b == "" ? "-" : sprintf("%.4g", b)), r
		}'
	done
	for q in p50 p99; do
		a=$(field "$OUT/$1.json" "latency_${q}_us")
		b=$(field "$OUT/$2.json" "latency_${q}_us")
		if [ -n "$a" ] && [ -n "$b" ]; then
			awk -v q="$q" -v a="$a" -v b="$b" 'BEGIN { printf "added latency %s: %+.0f us\n", q, b - a }'
		fi
	done
}

names=()
for round in $(seq 1 "$ROUNDS"); do
	measure "plain-$round" ""
	measure "journal-$round" "$JOURNAL_FLAGS"
	names+=("plain-$round" "journal-$round")
done

for name in "${names[@]}"; do
	echo "== $name.json"
	cat "$OUT/$name.json" 2>/dev/null || echo "(none)"
done
for round in $(seq 1 "$ROUNDS"); do
	echo
	echo "round $round of $ROUNDS: journal ($JOURNAL_FLAGS) against plain"
	compare "plain-$round" "journal-$round"
done
echo "results, logs and binaries in $OUT"
exit "$failed"
