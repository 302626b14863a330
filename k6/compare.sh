#!/usr/bin/env bash
# Keyflux, Nchan and the write(2) floor side by side (issue 15): the same
# load tool, the same machine, the same run.
#
# It builds keyflux and sseload, starts a private redis-server, a Keyflux
# on it, a private nginx with Nchan (installed from the distribution's
# packages when missing and this runs as root) and, per run, sseload's
# floor server (a program that only write(2)s each frame to each socket),
# then measures with `sseload -mode bench` (raw-TCP SSE clients, one event
# published at a fixed rate, every delivery timed, server CPU from
# /proc/<pid>/stat, Redis's from INFO cpu):
#
#   - IDLE idle streams: RSS per stream (Keyflux, Nchan)
#   - each of ROWS (clients x events/s): CPU per delivery, deliveries/s,
#     latency p50/p99, for Keyflux's channel relay (Redis PUBLISH ->
#     /streams/channels/<ch>), Keyflux's keyspace stream (SET ->
#     /streams/keyspace?pattern=<prefix>*), Nchan (POST /pub?id=<ch> ->
#     eventsource) and the floor (POST /pub)
#
# and prints one table with every figure and the ratios Keyflux/floor and
# Keyflux/Nchan. Every run's JSON goes into $OUT/runs.json (one array), and
# `sseload -mode chart` draws $CHART from it. Everything it starts is
# stopped by pid on exit.
#
# Usage (from anywhere in a clone; needs go, redis-server, and for Nchan
# nginx and libnginx-mod-nchan):
#   k6/compare.sh                  # the full table, about 7 minutes
#   QUICK=1 k6/compare.sh          # a smoke run with small numbers, about 1.5 minutes
#   KEYFLUX_FLAGS="--coalesce 1ms" k6/compare.sh
# Environment:
#   QUICK          1: IDLE=2000, ROWS="500x20 200x100 50x2000", DURATION=3, SETTLE=1s
#   IDLE           idle streams (default 19000; 0 skips the idle row)
#   ROWS           runs as CLIENTSxEPS (default "5000x20 2000x100 100x2000")
#   DURATION       seconds of publishing per run (default 10)
#   REPEAT         times each row is run, the rows taking turns (default 1);
#                  the table gives each figure's median over them
#   SIZE           payload bytes (default 100)
#   RAMP           streams opened per second (default 2000)
#   SETTLE         wait after the streams connect before reading RSS (default 5s)
#   NCHAN          0 skips Nchan (default 1)
#   KEYFLUX_FLAGS  extra keyflux flags
#   COALESCE       --coalesce windows to run the channel relay with too, each
#                  on a Keyflux of its own (default "2ms 25ms"; "" skips them)
#   FLOOR_BATCH    events a write for the floor run again with -batch
#                  (default "2"; "" skips it): the cheapest way for any
#                  server to make events share writes, and the latency it adds
#   KEYFLUX        a keyflux binary to use instead of building ./app
#   OUT            directory for logs and results (default: a new temporary one)
#   CHART          SVG to draw (default $OUT/performance.svg)
# Exit status: 0 every run completed cleanly; 1 a run failed (its JSON says
# how: "ok": false); 2 setup failed.
set -euo pipefail

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	IDLE=${IDLE:-2000}
	ROWS=${ROWS:-"500x20 200x100 50x2000"}
	DURATION=${DURATION:-3}
	SETTLE=${SETTLE:-1s}
fi
IDLE=${IDLE:-19000}
ROWS=${ROWS:-"5000x20 2000x100 100x2000"}
DURATION=${DURATION:-10}
REPEAT=${REPEAT:-1}
SIZE=${SIZE:-100}
RAMP=${RAMP:-2000}
SETTLE=${SETTLE:-5s}
NCHAN=${NCHAN:-1}
COALESCE=${COALESCE-2ms 25ms}
FLOOR_BATCH=${FLOOR_BATCH-2}
KEYFLUX_FLAGS=${KEYFLUX_FLAGS:-}
KEYFLUX=${KEYFLUX:-}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/compare.XXXXXX")}
CHART=${CHART:-$OUT/performance.svg}

cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec </dev/null

die() {
	echo "compare: $*" >&2
	exit 2
}

# Every stream is a socket in the server and in sseload; the machine
# allows 20,000 open files per process.
most=$IDLE
for row in $ROWS; do most=$((most > ${row%x*} ? most : ${row%x*})); done
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((most + 256)) ]; then
	die "$most streams need about $((most + 256)) open files; this shell may have $(ulimit -n)"
fi
command -v redis-server >/dev/null || die "redis-server is not installed"

# nchan_module: the path of Nchan's nginx module, or "".
nchan_module() {
	local f
	for f in /usr/lib/nginx/modules/ngx_nchan_module.so /usr/share/nginx/modules/ngx_nchan_module.so; do
		if [ -f "$f" ]; then
			echo "$f"
			return
		fi
	done
}
if [ "$NCHAN" = 1 ] && { ! command -v nginx >/dev/null || [ -z "$(nchan_module)" ]; }; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing nginx and libnginx-mod-nchan" >&2
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx libnginx-mod-nchan >&2
		# The package's own nginx service is not wanted; ours is private.
	else
		echo "compare: Nchan is skipped: install nginx and libnginx-mod-nchan (apt-get install nginx libnginx-mod-nchan) as root" >&2
		NCHAN=0
	fi
fi
if [ "$NCHAN" = 1 ] && [ -z "$(nchan_module)" ]; then
	echo "compare: Nchan is skipped: no ngx_nchan_module.so found" >&2
	NCHAN=0
fi

# build_tools, start and stop (k6/procs.sh).
# shellcheck source=k6/procs.sh
source k6/procs.sh # the working directory is the clone's root

# free_port: a loopback port nothing answers on, below the ephemeral
# range (32768 and up), so no outgoing connection holds it.
free_port() {
	local port
	for port in $(shuf -i 10000-29999 -n 50); do
		if ! (exec 4<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "no free port"
}

redis_pid="" redis_drain="" kf_pid="" kf_drain="" ng_pid="" floor_pid="" floor_drain=""
cleanup() {
	stop "$floor_pid" "$floor_drain"
	stop "$ng_pid"
	stop "$kf_pid" "$kf_drain"
	for w in "${!co_pid[@]}"; do
		stop "${co_pid[$w]}" "${co_drain[$w]}"
	done
	stop "$redis_pid" "$redis_drain"
}
declare -A co_pid=() co_drain=() co_url=()
trap cleanup EXIT
trap 'exit 130' INT TERM

build_tools

for _ in 1 2 3 4 5; do
	redis_port=$(free_port)
	start "$OUT/redis.log" "Ready to accept connections" \
		redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --logfile ""
	redis_pid=$started_pid redis_drain=$started_drain
	[ -n "$found" ] && break
	stop "$redis_pid" "$redis_drain"
	redis_pid="" redis_drain=""
done
[ -n "$redis_pid" ] || die "redis-server did not start (see $OUT/redis.log)"
redis=127.0.0.1:$redis_port

# shellcheck disable=SC2086 # KEYFLUX_FLAGS is a word list
start "$OUT/keyflux.log" "keyflux listening" \
	"$KEYFLUX" --listen 127.0.0.1:0 --redis-url "redis://$redis" --publish-token compare \
	--max-clients-per-ip 20000 --stream-rate-per-ip 100000 --stream-burst-per-ip 20000 $KEYFLUX_FLAGS
kf_pid=$started_pid kf_drain=$started_drain
[ -n "$found" ] || die "keyflux did not start: $(tail -n 3 "$OUT/keyflux.log")"
kf_url=$(sed -n 's/.*url=\(http:[^ ]*\).*/\1/p' <<<"$found")

# One more Keyflux per --coalesce window, on the same Redis.
for w in $COALESCE; do
	# shellcheck disable=SC2086 # KEYFLUX_FLAGS is a word list
	start "$OUT/keyflux-coalesce-$w.log" "keyflux listening" \
		"$KEYFLUX" --listen 127.0.0.1:0 --redis-url "redis://$redis" --publish-token compare --coalesce "$w" \
		--max-clients-per-ip 20000 --stream-rate-per-ip 100000 --stream-burst-per-ip 20000 $KEYFLUX_FLAGS
	co_pid[$w]=$started_pid co_drain[$w]=$started_drain
	[ -n "$found" ] || die "keyflux --coalesce $w did not start: $(tail -n 3 "$OUT/keyflux-coalesce-$w.log")"
	co_url[$w]=$(sed -n 's/.*url=\(http:[^ ]*\).*/\1/p' <<<"$found")
done

ng_workers=""
if [ "$NCHAN" = 1 ]; then
	ng_dir=$OUT/nginx
	mkdir -p "$ng_dir/tmp"
	chmod 0777 "$ng_dir/tmp" # the workers may run as another user
	for _ in 1 2 3 4 5; do # another port when one is taken between the check and the bind
		ng_port=$(free_port)
		cat >"$ng_dir/nginx.conf" <<EOF
load_module $(nchan_module);
worker_processes 2;
worker_rlimit_nofile 20000;
daemon off;
pid $ng_dir/nginx.pid;
error_log $ng_dir/error.log warn;
events { worker_connections 20000; }
http {
	access_log off;
	client_body_temp_path $ng_dir/tmp/body;
	proxy_temp_path $ng_dir/tmp/proxy;
	fastcgi_temp_path $ng_dir/tmp/fastcgi;
	uwsgi_temp_path $ng_dir/tmp/uwsgi;
	scgi_temp_path $ng_dir/tmp/scgi;
	server {
		listen 127.0.0.1:$ng_port;
		location ~ ^/sub/(\w[-\w]*)$ {
			nchan_subscriber eventsource;
			nchan_channel_id \$1;
		}
		location = /pub {
			nchan_publisher;
			nchan_channel_id \$arg_id;
		}
	}
}
EOF
		nginx -p "$ng_dir" -e "$ng_dir/error.log" -c "$ng_dir/nginx.conf" >"$ng_dir/stdout.log" 2>&1 &
		ng_pid=$!
		for _ in $(seq 100); do
			if (exec 4<>"/dev/tcp/127.0.0.1/$ng_port") 2>/dev/null || ! kill -0 "$ng_pid" 2>/dev/null; then
				break
			fi
			sleep 0.1
		done
		kill -0 "$ng_pid" 2>/dev/null && break
		wait "$ng_pid" 2>/dev/null || true
		ng_pid=""
	done
	[ -n "$ng_pid" ] || die "nginx did not start (see $ng_dir/error.log)"
	# The CPU and memory are the workers', with the master's.
	for _ in $(seq 50); do
		ng_workers=$(cat "/proc/$ng_pid/task/$ng_pid/children" 2>/dev/null || true)
		[ "$(wc -w <<<"$ng_workers")" -ge 2 ] && break
		sleep 0.1
	done
	[ -n "$ng_workers" ] || die "nginx did not start (see $ng_dir/error.log)"
	ng_pids=$(tr ' ' '\n' <<<"$ng_pid $ng_workers" | grep . | paste -sd, -)
	ng_url=http://127.0.0.1:$ng_port
	echo "nginx $(nginx -v 2>&1 | sed 's/.*\///') with Nchan at $ng_url (pids $ng_pids)" >&2
fi
echo "machine: $(getconf _NPROCESSORS_ONLN) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "keyflux $kf_url (pid $kf_pid) ${KEYFLUX_FLAGS:+with $KEYFLUX_FLAGS }on redis-server $redis (pid $redis_pid)" >&2

failed=0
runs=()
# bench NAME ARGS...: one sseload -mode bench run, its JSON in $OUT/NAME.json.
bench() {
	local name=$1 rc=0
	shift
	rm -f "$OUT/$name.json"
	echo "== $name" >&2
	"$OUT/sseload" -mode bench -rate "$RAMP" -settle "$SETTLE" -size "$SIZE" -timeout 5m \
		-json "$OUT/$name.json" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.log" || rc=$?
	sed 's/^/   /' "$OUT/$name.txt" >&2
	if [ "$rc" != 0 ]; then
		echo "compare: sseload exited $rc in $name (progress in $OUT/$name.log)" >&2
		failed=1
	fi
	[ -f "$OUT/$name.json" ] && runs+=("$OUT/$name.json")
	return 0
}

if [ "$IDLE" -gt 0 ]; then
	# First, while Keyflux is fresh: a Go process keeps memory it has used.
	bench "idle-keyflux" -server keyflux -run "$IDLE idle" -clients "$IDLE" -events 0 \
		-url "$kf_url/streams/channels/idle" -publish redis-publish -redis "$redis" -pids "$kf_pid"
	if [ "$NCHAN" = 1 ]; then
		bench "idle-nchan" -server nchan -run "$IDLE idle" -clients "$IDLE" -events 0 \
			-url "$ng_url/sub/idle" -publish http -publish-url "$ng_url/pub?id=idle" -pids "$ng_pids"
	fi
fi

# floor_run NAME SERVER [FLAGS...]: one bench run, named NAME, against a
# fresh floor server started with FLAGS: it keeps no state but its sockets.
floor_run() {
	local name=$1 server=$2 url
	shift 2
	start "$OUT/$name-server.log" "listening" "$OUT/sseload" -mode floor-server -listen 127.0.0.1:0 "$@"
	floor_pid=$started_pid floor_drain=$started_drain
	url=$(sed -n 's/.*url=\(http:[^ ]*\).*/\1/p' <<<"$found")
	if [ -n "$url" ]; then
		bench "$name" -server "$server" "${common[@]}" -pids "$floor_pid" \
			-url "$url/stream" -publish http -publish-url "$url/pub"
	else
		echo "compare: the floor server did not start (see $OUT/$name-server.log)" >&2
		failed=1
	fi
	stop "$floor_pid" "$floor_drain"
	floor_pid="" floor_drain=""
}

# A row's runs are named <row>-<server>, and <row>-<server>@<n> when
# repeated; the rows take turns, so that a slow spell of the machine falls
# on one repeat of each rather than on every repeat of one.
for rep in $(seq "$REPEAT"); do
for row in $ROWS; do
	clients=${row%x*} eps=${row#*x}
	events=$((eps * DURATION))
	common=(-run "$row" -clients "$clients" -eps "$eps" -events "$events")
	r=$row-
	[ "$rep" = 1 ] || r=$row@$rep-
	bench "${r}keyflux" -server keyflux "${common[@]}" -pids "$kf_pid" -redis "$redis" \
		-url "$kf_url/streams/channels/c$row" -publish redis-publish -channel "c$row"
	bench "${r}keyspace" -server "keyflux keyspace" "${common[@]}" -pids "$kf_pid" -redis "$redis" \
		-url "$kf_url/streams/keyspace?pattern=k$row:*&events=set" -publish redis-set -prefix "k$row:"
	for w in $COALESCE; do
		bench "${r}coalesce-$w" -server "keyflux --coalesce $w" "${common[@]}" -pids "${co_pid[$w]}" -redis "$redis" \
			-url "${co_url[$w]}/streams/channels/w$w$row" -publish redis-publish -channel "w$w$row"
	done
	if [ "$NCHAN" = 1 ]; then
		bench "${r}nchan" -server nchan "${common[@]}" -pids "$ng_pids" \
			-url "$ng_url/sub/c$row" -publish http -publish-url "$ng_url/pub?id=c$row"
	fi
	floor_run "${r}floor" floor
	for b in $FLOOR_BATCH; do
		floor_run "${r}floor-batch$b" "floor, $b a write" -batch "$b"
	done
done
done

# All runs in one JSON array, and the chart.
{
	printf '['
	sep=""
	for f in "${runs[@]}"; do
		printf '%s' "$sep"
		cat "$f"
		sep=","
	done
	printf ']\n'
} >"$OUT/runs.json"
"$OUT/sseload" -mode chart -in "$OUT/runs.json" -out "$CHART" \
	-title "Server CPU per delivered event (µs), $(getconf _NPROCESSORS_ONLN) CPUs" >&2 || failed=1

# field NAME KEY: a number of run NAME's JSON (one field a line), or "";
# with REPEAT, NAME is <row>-<server> and the number the median over the
# repeats that have it.
field() {
	local row=${1%%-*} rest=${1#*-} f
	for f in "$OUT/$1.json" "$OUT/$row@"*"-$rest.json"; do
		[ -f "$f" ] && sed -n "s/^ *\"$2\": \([-0-9.eE+]*\),\{0,1\}$/\1/p" "$f"
	done | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# line LABEL SCALE DECIMALS KEYFLUX KEYSPACE NCHAN FLOOR: one row of the
# table, each figure divided by SCALE, with Keyflux/floor and Keyflux/Nchan.
line() {
	awk -v l="$1" -v s="$2" -v d="$3" -v k="$4" -v ks="$5" -v n="$6" -v f="$7" 'BEGIN {
		fmt = "%." d "f"
		printf "%-30s %12s %12s %12s %12s %10s %10s\n", l,
			(k == "" ? "-" : sprintf(fmt, k / s)), (ks == "" ? "-" : sprintf(fmt, ks / s)),
			(n == "" ? "-" : sprintf(fmt, n / s)), (f == "" ? "-" : sprintf(fmt, f / s)),
			(k != "" && f != "" && f + 0 != 0 ? sprintf("%.2fx", k / f) : "-"),
			(k != "" && n != "" && n + 0 != 0 ? sprintf("%.2fx", k / n) : "-")
	}'
}

echo
[ "$REPEAT" = 1 ] || echo "each figure the median of $REPEAT runs (each run's own in its JSON)"
printf '%-30s %12s %12s %12s %12s %10s %10s\n' "run" "keyflux" "kf keyspace" "nchan" "floor" "kf/floor" "kf/nchan"
if [ "$IDLE" -gt 0 ]; then
	line "$IDLE idle: RSS KiB/stream" 1 2 "$(field idle-keyflux rss_per_stream_kib)" "" "$(field idle-nchan rss_per_stream_kib)" ""
fi
for row in $ROWS; do
	while IFS='|' read -r key label scale dec; do
		line "$row: $label" "$scale" "$dec" "$(field "$row-keyflux" "$key")" "$(field "$row-keyspace" "$key")" \
			"$(field "$row-nchan" "$key")" "$(field "$row-floor" "$key")"
	done <<-'EOF'
		server_cpu_us_per_delivery|CPU us/delivery|1|2
		deliveries_per_second|deliveries/s|1|0
		latency_p50_us|p50 ms|1000|2
		latency_p99_us|p99 ms|1000|2
		latency_max_us|max ms|1000|1
		delivery_ratio|delivery ratio|1|4
	EOF
	line "$row: Redis CPU us/event" 1 2 "$(field "$row-keyflux" redis_cpu_us_per_event)" "$(field "$row-keyspace" redis_cpu_us_per_event)" "" ""
	# The channel relay with each --coalesce window, in the keyflux column.
	for w in $COALESCE; do
		line "$row: CPU us/delivery, $w" 1 2 "$(field "$row-coalesce-$w" server_cpu_us_per_delivery)" "" \
			"$(field "$row-nchan" server_cpu_us_per_delivery)" "$(field "$row-floor" server_cpu_us_per_delivery)"
		line "$row: p99 ms, $w" 1000 2 "$(field "$row-coalesce-$w" latency_p99_us)" "" \
			"$(field "$row-nchan" latency_p99_us)" "$(field "$row-floor" latency_p99_us)"
	done
done
if [ -n "$FLOOR_BATCH" ]; then
	# What sharing writes costs any server: the floor, doing nothing but
	# the writes, with each frame waiting for the last event of its batch.
	echo
	printf '%-30s %12s %12s %12s %12s %10s\n' "the floor, N events a write" "CPU us" "p99 ms" "nchan CPU" "nchan p99" "/nchan"
	for row in $ROWS; do
		for b in $FLOOR_BATCH; do
			awk -v l="$row, $b a write" -v c="$(field "$row-floor-batch$b" server_cpu_us_per_delivery)" \
				-v p="$(field "$row-floor-batch$b" latency_p99_us)" -v nc="$(field "$row-nchan" server_cpu_us_per_delivery)" \
				-v np="$(field "$row-nchan" latency_p99_us)" 'BEGIN {
				printf "%-30s %12s %12s %12s %12s %10s\n", l, (c == "" ? "-" : sprintf("%.2f", c)),
					(p == "" ? "-" : sprintf("%.2f", p / 1000)), (nc == "" ? "-" : sprintf("%.2f", nc)),
					(np == "" ? "-" : sprintf("%.2f", np / 1000)),
					(c != "" && nc != "" && nc + 0 != 0 ? sprintf("%.2fx", c / nc) : "-")
			}'
		done
	done
fi
echo
echo "runs: $OUT/runs.json; chart: $CHART; logs in $OUT"
exit "$failed"
