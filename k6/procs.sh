# procs.sh: building, starting and stopping the programs of the benchmark
# scripts (compare.sh, journal-overhead.sh), sourced by them from the
# clone's root. Uses $OUT, and die from the script.

# start LOG PATTERN CMD...: runs CMD in the background with its output to
# LOG, and waits, line by line, for PATTERN (a fixed string) to appear in
# it. It sets started_pid, found to the matching line ("" when the process
# ended first) and started_drain to a background cat that keeps copying
# the output to LOG, so the process never blocks on a full pipe.
start() {
	local log=$1 pattern=$2 fifo line
	shift 2
	fifo="$OUT/fifo.$$"
	rm -f "$fifo"
	mkfifo "$fifo"
	"$@" >"$fifo" 2>&1 &
	started_pid=$!
	exec 3<"$fifo"
	rm -f "$fifo"
	found=""
	: >"$log"
	while IFS= read -r -t 60 line <&3; do
		printf '%s\n' "$line" >>"$log"
		if [[ $line == *"$pattern"* ]]; then
			found=$line
			break
		fi
	done
	cat <&3 >>"$log" &
	started_drain=$!
	exec 3<&-
}

# stop PID [DRAIN]: ends a process this script started (by its id, with
# SIGTERM, if it still runs), and waits for it and for the copy of its
# output. Empty arguments are skipped.
stop() {
	if [ -n "${1:-}" ]; then
		kill -TERM "$1" 2>/dev/null || true
		wait "$1" 2>/dev/null || true
	fi
	if [ -n "${2:-}" ]; then
		wait "$2" 2>/dev/null || true
	fi
}

# build_tools: keyflux into $OUT (unless $KEYFLUX names a binary already)
# and sseload, setting KEYFLUX.
build_tools() {
	if [ -z "$KEYFLUX" ]; then
		echo "building keyflux into $OUT" >&2
		go build -o "$OUT/keyflux" ./app || die "building ./app failed"
		KEYFLUX=$OUT/keyflux
	fi
	echo "building sseload into $OUT" >&2
	go build -o "$OUT/sseload" ./k6/sseload || die "building ./k6/sseload failed"
}
