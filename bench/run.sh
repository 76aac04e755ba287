#!/usr/bin/env bash
# bench/run.sh: the benchmark of the "shoal serve" issue, reported in
# docs/benchmarks.md. Run from anywhere as `bash bench/run.sh`.
#
# It builds shoal, the ceiling (a bare net/http handler doing the same
# math), the load generator and the startup timer into a temporary
# directory, starts the three servers on 127.0.0.1 and, REPEAT times, drives
# each in turn with bench/loadgen at each concurrency in CONCS:
#
#   flask     the founding example's predict.py on the same XGBoost model,
#             under gunicorn with 2 workers                    POST /predict
#   shoal     shoal serve examples/models -grpc ''             POST /predict
#   shoal-v2  the same server, c=64 only         POST /v2/models/iris/infer
#   ceiling   bench/ceiling                                    POST /predict
#
# Every request carries one iris row. loadgen reports req/s, latency
# percentiles and the server's CPU time per request (utime+stime of the
# server and all its descendants, e.g. gunicorn's workers, read from
# /proc over the measured window), and the CPU the rest of the machine used
# meanwhile, which shows when something else competed. Then it times shoal serve from exec to
# the first 200 from /v2/health/ready (polled every 1 ms, 10 runs) and
# reads its VmRSS after ready and after the load runs.
#
# It prints the markdown table of medians and leaves the raw JSON in the
# directory it names at the end. The load generator runs on the same
# machine as the server: on a small machine they share the cores.
#
# Environment: REPEAT (3), DURATION (5s), WARMUP (1s), CONCS ("1 8 64"),
# PORT (first of four consecutive ports, 18080), GUNICORN (gunicorn, whose
# Python must have flask, numpy and xgboost: on Debian
# `apt-get install -y gunicorn python3-flask python3-xgboost python3-numpy`).
set -euo pipefail
cd "$(dirname "$0")/.."

REPEAT=${REPEAT:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONCS=${CONCS:-"1 8 64"}
PORT=${PORT:-18080}
GUNICORN=${GUNICORN:-gunicorn}
MAXC=$(echo $CONCS | tr ' ' '\n' | sort -n | tail -1)

OUT=$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench.XXXXXX")
BIN=$OUT/bin
MODEL=$PWD/examples/models/iris/1/model.json

# Every process started in the background and not yet reaped is in pids;
# on exit each one gets SIGTERM, then SIGKILL.
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

# bg CMD...: run CMD in the background, recorded in pids; its pid is $last.
bg() {
	"$@" &
	last=$!
	pids+=("$last")
}

# reap PID: wait for PID, one of pids, and forget it; returns its status.
reap() {
	local rc=0 p keep=()
	wait "$1" || rc=$?
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
	return "$rc"
}

# fg CMD...: run CMD in the background and wait for it, so that a signal
# reaches the trap at once.
fg() {
	bg "$@"
	reap "$last"
}

for p in 0 1 2 3; do
	if curl -s -o /dev/null "http://127.0.0.1:$((PORT + p))/"; then
		log "port $((PORT + p)) is in use: set PORT"
		exit 1
	fi
done

log "building into $BIN"
go build -o "$BIN/shoal" ./cmd/shoal
go build -o "$BIN/" ./bench/ceiling ./bench/loadgen ./bench/startup ./bench/report

{
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "kernel: $(uname -r)"
	go version
	"$GUNICORN" --version 2>&1
	echo "loadavg at start: $(cut -d" " -f1-3 /proc/loadavg)"
	dirty=$(git status --porcelain -- cmd internal examples go.mod 2>/dev/null | head -1)
	echo "shoal commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${dirty:+ with uncommitted changes}"
} >"$OUT/machine.txt"

printf '{"instances": [[5.1, 3.5, 1.4, 0.2]]}' >"$OUT/predict.json"
printf '{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}' >"$OUT/infer.json"

# start NAME HEALTH_URL CMD...: start a server, logging to NAME.log, and
# wait up to 30 s for HEALTH_URL to answer 200. The server's pid is $server.
start() {
	local name=$1 health=$2
	shift 2
	bg "$@" >>"$OUT/$name.log" 2>&1
	server=$last
	for _ in $(seq 3000); do
		if curl -sf -o /dev/null "$health"; then return; fi
		if ! kill -0 "$server" 2>/dev/null; then
			log "$name exited; its log:"; cat "$OUT/$name.log" >&2; exit 1
		fi
		sleep 0.01
	done
	log "$name not healthy after 30s"; exit 1
}

# check URL: the server at URL must answer the benchmark's row as the
# founding example does, class 0 (setosa).
check() {
	local got
	got=$(curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$OUT/predict.json" "$1/predict" | tr -d ' \n')
	if [ "$got" != '{"predictions":[0]}' ]; then
		log "$1/predict answered $got, want {\"predictions\":[0]}"; exit 1
	fi
}

# stop: stop $server and wait for it.
stop() {
	kill -TERM "$server"
	reap "$server" || true
}

# load LABEL URL BODY_FILE C: one loadgen run against $server (a pid).
load() {
	log "  $1 c=$4"
	fg "$BIN/loadgen" -label "$1" -url "$2" -body "@$3" -c "$4" \
		-d "$DURATION" -warmup "$WARMUP" -pid "$server" >>"$OUT/loadgen.jsonl"
}

# rss WHEN: append $server's VmRSS and VmHWM to rss.jsonl.
rss() {
	local kib hwm
	kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$server/status")
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$server/status")
	printf '{"when": "%s", "vmrss_kib": %d, "vmhwm_kib": %d}\n' "$1" "$kib" "$hwm" >>"$OUT/rss.jsonl"
}

# All three servers stay up, idle but for the one under load, and the
# runs rotate between them at each concurrency, so that whatever else the
# machine does at some moment falls on all of them alike.
flask=http://127.0.0.1:$PORT
start flask "$flask/health" env MODEL="$MODEL" "$GUNICORN" -w 2 -b "127.0.0.1:$PORT" --chdir bench/flask predict:app
flask_pid=$server
check "$flask"

shoal=http://127.0.0.1:$((PORT + 1))
start shoal "$shoal/v2/health/ready" "$BIN/shoal" serve -http "127.0.0.1:$((PORT + 1))" -grpc '' examples/models
shoal_pid=$server
rss "after ready"
check "$shoal"

ceiling=http://127.0.0.1:$((PORT + 2))
start ceiling "$ceiling/health" "$BIN/ceiling" -addr "127.0.0.1:$((PORT + 2))" -model "$MODEL"
ceiling_pid=$server
check "$ceiling"

for rep in $(seq "$REPEAT"); do
	log "repeat $rep/$REPEAT"
	for c in $CONCS; do
		server=$flask_pid load flask "$flask/predict" "$OUT/predict.json" "$c"
		server=$shoal_pid load shoal "$shoal/predict" "$OUT/predict.json" "$c"
		if [ "$c" = "$MAXC" ]; then
			server=$shoal_pid load shoal-v2 "$shoal/v2/models/iris/infer" "$OUT/infer.json" "$c"
		fi
		server=$ceiling_pid load ceiling "$ceiling/predict" "$OUT/predict.json" "$c"
	done
done
server=$shoal_pid rss "after all the load runs ($REPEAT x c=$(echo $CONCS | tr ' ' ,) /predict, c=$MAXC /v2)"
for server in $flask_pid $shoal_pid $ceiling_pid; do stop; done

log "startup: 10 runs of each"
url=http://127.0.0.1:$((PORT + 3))
fg "$BIN/startup" -n 10 -label "examples/models" -log "$OUT/startup.log" -url "$url/v2/health/ready" -- \
	"$BIN/shoal" serve -http "127.0.0.1:$((PORT + 3))" -grpc '' examples/models >>"$OUT/startup.json"
fg "$BIN/startup" -n 10 -label "built-in example (no argument)" -log "$OUT/startup.log" -url "$url/v2/health/ready" -- \
	"$BIN/shoal" serve -http "127.0.0.1:$((PORT + 3))" -grpc '' >>"$OUT/startup.json"

cat "$OUT/machine.txt"
echo
"$BIN/report" -dir "$OUT"
echo
echo "raw results: $OUT"
