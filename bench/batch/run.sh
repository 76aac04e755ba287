#!/usr/bin/env bash
# bench/batch/run.sh: the benchmark of dynamic batching, reported in
# docs/batching.md. Run from anywhere as `bash bench/batch/run.sh`.
#
# It builds shoal and bench/batch/drive into a temporary directory, writes
# 4096 one-row request bodies with gen_mlp.py (python3-onnx, numpy), and
# serves the committed ONNX MLP bench/batch/mlp.onnx (64 -> 512 -> 512 ->
# 10) twice from one `shoal serve` on 127.0.0.1: "plain" (no batching) and
# "batched" (the model.yaml below). Then, REPEAT times, it drives each model
# closed-loop with drive at each concurrency in CONCS, each request one
# distinct row, and reads the batch-size histogram of the batched model from
# /metrics before and after each of its runs.
#
# Last, the overload case: it offers the batched model, open loop, twice
# the median throughput it measured at the highest concurrency, each
# request with a deadline (the OIP "timeout" parameter, TIMEOUT_US), and
# reports how fast the excess was rejected (429) and the latency of the
# accepted requests.
#
# It prints markdown tables of medians and leaves the raw JSON in the
# directory it names at the end. The generator runs on the same machine as
# the server and shares its cores, unless SERVER_CPUS and DRIVE_CPUS pin
# them (taskset lists, such as 0 and 1).
#
# Environment: REPEAT (3), DURATION (5s), WARMUP (1s), CONCS ("1 8 64"),
# PORT (28190), TIMEOUT_US (50000), and the batched model's settings:
# MAX_CONCURRENCY (1: batches executing at once), MAX_QUEUE_DELAY (0s),
# WAIT_FOR_ARRIVING (false); SERVER_CPUS, DRIVE_CPUS (unset: not pinned);
# HIDDEN (512: the committed mlp.onnx; another width is generated);
# OVERLOAD_INFLIGHT (256: the overload generator's connections; a start
# beyond them is skipped and counted as other, as a client pool would).
set -euo pipefail
cd "$(dirname "$0")/../.."

REPEAT=${REPEAT:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONCS=${CONCS:-"1 8 64"}
PORT=${PORT:-28190}
TIMEOUT_US=${TIMEOUT_US:-50000}
MAX_CONCURRENCY=${MAX_CONCURRENCY:-1}
MAX_QUEUE_DELAY=${MAX_QUEUE_DELAY:-0s}
WAIT_FOR_ARRIVING=${WAIT_FOR_ARRIVING:-false}
HIDDEN=${HIDDEN:-512}
OVERLOAD_INFLIGHT=${OVERLOAD_INFLIGHT:-256}
MAXC=$(echo $CONCS | tr ' ' '\n' | sort -n | tail -1)
SERVE_PIN=()
DRIVE_PIN=()
[ -n "${SERVER_CPUS:-}" ] && SERVE_PIN=(taskset -c "$SERVER_CPUS")
[ -n "${DRIVE_CPUS:-}" ] && DRIVE_PIN=(taskset -c "$DRIVE_CPUS")

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

BODIES=$OUT/bodies.jsonl
/usr/bin/python3 bench/batch/gen_mlp.py --bodies "$BODIES"
REPO=$OUT/repo
mkdir -p "$REPO/plain/1" "$REPO/batched/1"
if [ "$HIDDEN" = 512 ]; then
	cp bench/batch/mlp.onnx "$REPO/plain/1/model.onnx"
else
	log "generating a 64 -> $HIDDEN -> $HIDDEN -> 10 MLP"
	/usr/bin/python3 bench/batch/gen_mlp.py --hidden "$HIDDEN" "$REPO/plain/1/model.onnx"
fi
cp "$REPO/plain/1/model.onnx" "$REPO/batched/1/model.onnx"
cat > "$REPO/batched/model.yaml" <<YAML
max_concurrency: $MAX_CONCURRENCY   # batches executing at once
batching:
  max_batch_size: 64
  max_queue_delay: $MAX_QUEUE_DELAY
  wait_for_arriving: $WAIT_FOR_ARRIVING  # wait only while requests for the model are being read
  max_queue_size: 512
YAML

if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
	log "port $PORT is in use: set PORT"
	exit 1
fi
"${SERVE_PIN[@]}" "$BIN/shoal" serve -http "127.0.0.1:$PORT" -grpc '' "$REPO" > "$OUT/serve.log" 2>&1 &
pids+=($!)
SERVER=$!
for _ in $(seq 600); do
	curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null && break
	sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null || { log "shoal did not get ready"; exit 1; }

# cpu prints the server's CPU time so far in clock ticks (user + system).
cpu() { awk '{ print $14 + $15 }' "/proc/$SERVER/stat"; }
# served prints how many requests the model has answered (any outcome).
served() {
	curl -s "http://127.0.0.1:$PORT/metrics" |
		awk -v m="model=\"$1\"" '/^shoal_inference_requests_total\{/ && index($0, m) { n += $NF } END { print n + 0 }'
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# hist prints the batched model's cumulative batch-size buckets as "le count".
hist() {
	curl -s "http://127.0.0.1:$PORT/metrics" |
		sed -n 's/^shoal_inference_batch_size_bucket{model="batched",version="1",le="\([^"]*\)"} \(.*\)$/\1 \2/p'
}

for r in $(seq "$REPEAT"); do
	for c in $CONCS; do
		for m in plain batched; do
			log "run $r: $m c=$c"
			[ "$m" = batched ] && hist > "$OUT/hist-before"
			c0=$(cpu) n0=$(served "$m")
			"${DRIVE_PIN[@]}" "$BIN/drive" -url "http://127.0.0.1:$PORT/v2/models/$m/infer" -bodies "$BODIES" \
				-c "$c" -d "$DURATION" -warmup "$WARMUP" -label "$m" >> "$OUT/load.jsonl"
			c1=$(cpu) n1=$(served "$m")
			echo "$m $c $(( (c1 - c0) * TICK_US )) $((n1 - n0))" >> "$OUT/cpu.txt"
			if [ "$m" = batched ]; then
				hist > "$OUT/hist-after"
				# Executions of this run (warm-up included) per bucket.
				awk -v c="$c" 'FILENAME == ARGV[1] { b[$1] = $2; next } { print c, $1, $2 - b[$1] }' "$OUT/hist-before" "$OUT/hist-after" >> "$OUT/hist.txt"
			fi
		done
	done
done

# The overload case: twice the batched throughput at the highest
# concurrency, open loop.
CAP=$(jq -s "[.[] | select(.label == \"batched\" and .concurrency == $MAXC) | .rps] | sort | .[length/2|floor]" "$OUT/load.jsonl")
RATE=$(jq -n "$CAP * 2 | floor")
log "overload: offering $RATE req/s (2 x $CAP) with timeout ${TIMEOUT_US}us"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^shoal_batch_rejections_total' > "$OUT/rejections-before.txt" || true
"${DRIVE_PIN[@]}" "$BIN/drive" -url "http://127.0.0.1:$PORT/v2/models/batched/infer" -bodies "$BODIES" \
	-timeout-us "$TIMEOUT_US" -rate "$RATE" -d "$DURATION" -max-inflight "$OVERLOAD_INFLIGHT" > "$OUT/overload.json"
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
echo "Batched/plain throughput, median of the per-repeat ratios:"
echo
for c in $CONCS; do
	jq -rs --argjson c "$c" '
		[.[] | select(.concurrency == $c)] as $rs
		| [range(0; $rs | map(select(.label == "plain")) | length) as $i
		   | (($rs | map(select(.label == "batched")))[$i].rps / ($rs | map(select(.label == "plain")))[$i].rps)]
		| sort | "c=\($c): \(.[length/2|floor] * 100 | round / 100)x (repeats: \(map(. * 100 | round / 100)))"' "$OUT/load.jsonl"
done
echo
echo "Server CPU per request (user + system, warm-ups included), median over the repeats:"
echo
echo "| c | plain µs | batched µs |"
echo "|---:|---:|---:|"
for c in $CONCS; do
	line="| $c |"
	for m in plain batched; do
		v=$(awk -v m="$m" -v c="$c" '$1 == m && $2 == c && $4 > 0 { print $3 / $4 }' "$OUT/cpu.txt" | sort -n | awk '{ a[NR] = $1 } END { printf "%.0f", a[int((NR + 1) / 2)] }')
		line="$line $v |"
	done
	echo "$line"
done
echo
echo "Executions of the batched model by rows (all repeats, warm-ups included):"
echo
echo "| c | 1 | 2 | 3-4 | 5-8 | 9-16 | 17-32 | 33-64 | total | mean rows |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in $CONCS; do
	awk -v c="$c" '$1 == c { n[$2] += $3 } END {
		split("1 2 4 8 16 32 64", le, " ")
		prev = 0; line = "| " c " |"; mean = 0
		lo[1] = 1; lo[2] = 2; lo[3] = 3; lo[4] = 5; lo[5] = 9; lo[6] = 17; lo[7] = 33
		for (i = 1; i <= 7; i++) { d = n[le[i]] - prev; prev = n[le[i]]; line = line " " d " |"; mean += d * (lo[i] + le[i]) / 2 }
		printf "%s %d | %.1f |\n", line, n["+Inf"], (n["+Inf"] ? mean / n["+Inf"] : 0)
	}' "$OUT/hist.txt"
done
echo
echo "(mean rows: each bucket counted at its midpoint)"
echo
echo "Overload (open loop, deadline ${TIMEOUT_US}us):"
echo
jq -r '"offered \(.offered_rps|floor) req/s for \(.seconds)s: \(.accepted.count) accepted (\(.rps|floor) req/s, p50 \(.accepted.p50_us/1000*100|round/100) ms, p99 \(.accepted.p99_us/1000*100|round/100) ms, max \(.accepted.max_us/1000*100|round/100) ms), \(.rejected.count) rejected with 429 (p50 \(.rejected.p50_us/1000*100|round/100) ms, p99 \(.rejected.p99_us/1000*100|round/100) ms, max \(.rejected.max_us/1000*100|round/100) ms), \(.other) other\(if .first_other then " (first: \(.first_other))" else "" end)"' "$OUT/overload.json"
echo
echo "Rejections counted by the server during the overload run:"
echo
awk 'FILENAME == ARGV[1] { b[$1] = $2; next } { print $1, $2 - b[$1] }' "$OUT/rejections-before.txt" "$OUT/rejections.txt"
echo
log "raw results in $OUT"
