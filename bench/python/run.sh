#!/usr/bin/env bash
# bench/python/run.sh: the benchmark of the http and python backends,
# reported in docs/custom-code.md. Run from anywhere as
# `bash bench/python/run.sh`.
#
# One model throughout: the founding example's iris LogisticRegression
# (internal/backend/httpmodel/testdata/seed/train.py, run here into a
# temporary directory), every request one row. Each server in turn is
# started on 127.0.0.1 and driven by bench/loadgen at each concurrency in
# CONCS:
#
#   flask        the founding predict.py, unchanged, as it runs itself
#                (Flask's threaded development server)        POST /predict
#   gunicorn     the same predict.py under gunicorn -w 2      POST /predict
#   shoal-http   shoal serve, format: http, starting that predict.py
#                                                             POST /predict
#   shoal-python shoal serve, format: python (2 workers, the same
#                model.pkl), batching off                     POST /predict
#   shoal-python-batch   the same with dynamic batching on
#                (max_batch_size 64, max_queue_delay 1ms, 2 batches
#                at once)                                     POST /predict
#
# loadgen reports requests/s, latency percentiles and the server's CPU per
# request (utime+stime of the server process and all its descendants:
# gunicorn's workers, the Flask app shoal started, the python workers).
# The load generator runs on the same machine and shares its cores.
#
# Environment: PYTHON (/usr/bin/python3, with flask, numpy, sklearn),
# GUNICORN (gunicorn), REPEAT (3), DURATION (5s), WARMUP (1s),
# CONCS ("1 8 64"), PORT (first of five consecutive ports, 19180).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-/usr/bin/python3}
GUNICORN=${GUNICORN:-gunicorn}
REPEAT=${REPEAT:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONCS=${CONCS:-"1 8 64"}
PORT=${PORT:-19180}

OUT=$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench-python.XXXXXX")
BIN=$OUT/bin

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '%s\n' "$*" >&2; }

for p in 0 1 2 3 4; do
	if curl -s -o /dev/null "http://127.0.0.1:$((PORT + p))/"; then
		log "port $((PORT + p)) is in use: set PORT"; exit 1
	fi
done

log "building into $BIN"
go build -o "$BIN/shoal" ./cmd/shoal
go build -o "$BIN/" ./bench/loadgen

# The founding example, trained here.
SEED=$OUT/seed
mkdir -p "$SEED"
cp internal/backend/httpmodel/testdata/seed/train.py internal/backend/httpmodel/testdata/seed/predict.py "$SEED/"
(cd "$SEED" && "$PYTHON" train.py >/dev/null)

# The three shoal repositories.
mkrepo() { # NAME MODEL_YAML
	mkdir -p "$OUT/$1/iris/1"
	cp "$SEED/predict.py" "$SEED/model.pkl" "$OUT/$1/iris/1/"
	printf '%s\n' "$2" >"$OUT/$1/iris/model.yaml"
}
mkrepo repo-http "format: http
inputs: [{name: input, datatype: FP32, shape: [-1, 4]}]
outputs: [{name: predictions, datatype: INT64, shape: [-1]}]
parameters: {command: $PYTHON predict.py}"
mkrepo repo-python "format: python
parameters: {python: $PYTHON, allow_pickle: \"true\", workers: \"2\"}"
mkrepo repo-python-batch "format: python
max_concurrency: 2
batching: {max_batch_size: 64, max_queue_delay: 1ms}
parameters: {python: $PYTHON, allow_pickle: \"true\", workers: \"2\", batchable: \"true\"}"

{
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	go version
	"$PYTHON" -c 'import sys, flask, sklearn, numpy; print("python", sys.version.split()[0], "flask", flask.__version__, "sklearn", sklearn.__version__, "numpy", numpy.__version__)'
	echo "gunicorn $("$GUNICORN" --version 2>&1 | tail -1)"
} >"$OUT/machine.txt"
printf '{"instances": [[5.1, 3.5, 1.4, 0.2]]}' >"$OUT/predict.json"

start() { # NAME HEALTH_URL CMD...
	local name=$1 health=$2
	shift 2
	"$@" >>"$OUT/$name.log" 2>&1 &
	server=$!
	pids+=("$server")
	for _ in $(seq 6000); do
		if curl -sf -o /dev/null "$health"; then return; fi
		if ! kill -0 "$server" 2>/dev/null; then log "$name exited; its log:"; cat "$OUT/$name.log" >&2; exit 1; fi
		sleep 0.01
	done
	log "$name not healthy after 60s"; exit 1
}
stop() {
	kill -TERM "$server"
	wait "$server" || true
}
load() { # LABEL URL C
	log "  $1 c=$3"
	"$BIN/loadgen" -label "$1" -url "$2" -body "@$OUT/predict.json" -c "$3" \
		-d "$DURATION" -warmup "$WARMUP" -pid "$server" >>"$OUT/loadgen.jsonl"
}
# The answer must be the founding app's before anything is timed.
check() { # URL
	local got
	got=$(curl -sf -H 'Content-Type: application/json' -d @"$OUT/predict.json" "$1" | tr -d ' \n')
	[ "$got" = '{"predictions":[0]}' ] || { log "$1 answered $got, want {\"predictions\":[0]}"; exit 1; }
}

for rep in $(seq "$REPEAT"); do
	log "repeat $rep/$REPEAT"
	url=http://127.0.0.1:$PORT
	start flask "$url/health" env -C "$SEED" HOST=127.0.0.1 PORT=$PORT "$PYTHON" predict.py
	check "$url/predict"
	for c in $CONCS; do load flask "$url/predict" "$c"; done
	stop

	url=http://127.0.0.1:$((PORT + 1))
	start gunicorn "$url/health" "$GUNICORN" -w 2 -b "127.0.0.1:$((PORT + 1))" --chdir "$SEED" predict:app
	check "$url/predict"
	for c in $CONCS; do load gunicorn "$url/predict" "$c"; done
	stop

	i=2
	for name in http python python-batch; do
		url=http://127.0.0.1:$((PORT + i))
		start "shoal-$name" "$url/v2/health/ready" "$BIN/shoal" serve -http "127.0.0.1:$((PORT + i))" -grpc '' "$OUT/repo-$name"
		check "$url/predict"
		for c in $CONCS; do load "shoal-$name" "$url/predict" "$c"; done
		stop
		i=$((i + 1))
	done
done

cat "$OUT/machine.txt"
echo
# The table: medians over the repeats.
"$PYTHON" - "$OUT/loadgen.jsonl" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault((r["label"], r["concurrency"]), []).append(r)
print("| server | c | req/s | p50 ms | p99 ms | server CPU µs/req | errors |")
print("|---|---:|---:|---:|---:|---:|---:|")
for (label, c), rs in runs.items():
    med = lambda k: statistics.median(r[k] for r in rs)
    print("| %s | %d | %.0f | %.2f | %.2f | %.0f | %d |" % (label, c, med("rps"), med("p50_us") / 1000,
          med("p99_us") / 1000, med("server_cpu_us_per_req"), sum(r["errors"] for r in rs)))
PY
echo
echo "raw results: $OUT"
