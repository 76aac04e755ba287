#!/usr/bin/env bash
# bench/batch/run.sh: the benchmark of dynamic batching, reported in
# docs/batching.md. Run from anywhere as `bash bench/batch/run.sh`.
#
# It builds shoal and bench/batch/drive into a temporary directory,
# generates the model and 4096 one-row request bodies with gen.py
# (python3-xgboost; one to two minutes), and serves the model twice from
# one `shoal serve` on 127.0.0.1: "plain" (no batching) and "batched" (the
# model.yaml below). Then, REPEAT times, it drives each model closed-loop
# with drive at each concurrency in CONCS, each request one distinct row
# (bench/loadgen repeats one body, and a repeated row finds its path through
# the trees in cache), and reads the batch-size histogram of the batched
# model from /metrics.
#
# Last, the overload case: it offers the batched model, open loop, twice
# the median throughput it measured at the highest concurrency, each
# request with a deadline (the OIP "timeout" parameter, TIMEOUT_US), and
# reports how fast the excess was rejected (429) and the latency of the
# accepted requests.
#
# It prints markdown tables of medians and leaves the raw JSON in the
# directory it names at the end. The generators run on the same machine as
# the server and share its cores.
#
# Environment: REPEAT (3), DURATION (5s), WARMUP (1s), CONCS ("1 8 64"),
# PORT (18090), TIMEOUT_US (50000), MODEL_DIR (a directory holding
# model.json and bodies.jsonl from gen.py, to skip generating them).
set -euo pipefail
cd "$(dirname "$0")/../.."

REPEAT=${REPEAT:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONCS=${CONCS:-"1 8 64"}
PORT=${PORT:-18090}
TIMEOUT_US=${TIMEOUT_US:-50000}
MAXC=$(echo $CONCS | tr ' ' '\n' | sort -n | tail -1)

OUT=$(mktemp -d "${TMPDIR:-/tmp}/shoal-batch-bench.XXXXXX")
BIN=$OUT/bin
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '%s\n' "$*" >&2; }

log "building into $BIN"
go build -o "$BIN/shoal" ./cmd/shoal
go build -o "$BIN/drive" ./bench/batch/drive

MODEL_DIR=${MODEL_DIR:-}
if [ -z "$MODEL_DIR" ]; then
	MODEL_DIR=$OUT/model
	mkdir -p "$MODEL_DIR"
	log "generating the model (gen.py)"
	/usr/bin/python3 bench/batch/gen.py "$MODEL_DIR"
fi
REPO=$OUT/repo
mkdir -p "$REPO/plain/1" "$REPO/batched/1"
cp "$MODEL_DIR/model.json" "$REPO/plain/1/"
cp "$MODEL_DIR/model.json" "$REPO/batched/1/"
cat > "$REPO/batched/model.yaml" <<'YAML'
max_concurrency: 2          # batches executing at once: one per core
batching:
  max_batch_size: 64
  max_queue_delay: 0s       # no waiting while the backend is free: batches form while it is busy
  max_queue_size: 512
YAML
BODIES=$MODEL_DIR/bodies.jsonl

"$BIN/shoal" serve -http "127.0.0.1:$PORT" -grpc '' "$REPO" > "$OUT/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do
	curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null && break
	sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null || { log "shoal did not get ready"; exit 1; }

batch_hist() {
	curl -s "http://127.0.0.1:$PORT/metrics" | grep '^shoal_inference_batch_size_bucket{model="batched"' || true
}

for r in $(seq "$REPEAT"); do
	for c in $CONCS; do
		for m in plain batched; do
			log "run $r: $m c=$c"
			"$BIN/drive" -url "http://127.0.0.1:$PORT/v2/models/$m/infer" -bodies "$BODIES" \
				-c "$c" -d "$DURATION" -warmup "$WARMUP" -label "$m" >> "$OUT/load.jsonl"
		done
	done
done
batch_hist > "$OUT/batch_hist.txt"

# The overload case: twice the batched throughput at the highest
# concurrency, open loop.
CAP=$(jq -s "[.[] | select(.label == \"batched\" and .concurrency == $MAXC) | .rps] | sort | .[length/2|floor]" "$OUT/load.jsonl")
RATE=$(jq -n "$CAP * 2 | floor")
log "overload: offering $RATE req/s (2 x $CAP) with timeout ${TIMEOUT_US}us"
"$BIN/drive" -url "http://127.0.0.1:$PORT/v2/models/batched/infer" -bodies "$BODIES" \
	-timeout-us "$TIMEOUT_US" -rate "$RATE" -d "$DURATION" > "$OUT/overload.json"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^shoal_batch_rejections_total' > "$OUT/rejections.txt" || true

echo
echo "| model | c | req/s | p50 ms | p99 ms |"
echo "|---|---:|---:|---:|---:|"
for c in $CONCS; do
	for m in plain batched; do
		jq -rs --arg m "$m" --argjson c "$c" '
			[.[] | select(.label == $m and .concurrency == $c)] as $rs
			| def med(f): ($rs | map(f) | sort | .[length/2|floor]);
			"| \($m) | \($c) | \(med(.rps) | floor) | \(med(.accepted.p50_us)/1000*100 | round/100) | \(med(.accepted.p99_us)/1000*100 | round/100) |"' "$OUT/load.jsonl"
	done
done
echo
echo "Batch sizes of the batched model over all runs (cumulative buckets, rows <= le):"
echo
echo '```'
sed 's/^shoal_inference_batch_size_bucket{model="batched",version="1",//' "$OUT/batch_hist.txt"
echo '```'
echo
echo "Overload (open loop, deadline ${TIMEOUT_US}us):"
echo
jq -r '"offered \(.offered_rps|floor) req/s for \(.seconds)s: \(.accepted.count) accepted (\(.rps|floor) req/s, p50 \(.accepted.p50_us/1000*100|round/100) ms, p99 \(.accepted.p99_us/1000*100|round/100) ms, max \(.accepted.max_us/1000*100|round/100) ms), \(.rejected.count) rejected with 429 (p50 \(.rejected.p50_us/1000*100|round/100) ms, p99 \(.rejected.p99_us/1000*100|round/100) ms, max \(.rejected.max_us/1000*100|round/100) ms), \(.other) other"' "$OUT/overload.json"
echo
cat "$OUT/rejections.txt"
echo
log "raw results in $OUT"
