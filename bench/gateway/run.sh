#!/usr/bin/env bash
# bench/gateway/run.sh: the benchmark of the gateway issue, reported in
# docs/gateway.md. Run from anywhere as `bash bench/gateway/run.sh`.
#
# It builds shoal, bench/gateway/load (an open-loop fixed-rate generator)
# and bench/gateway/bare (a bare net/http server with a fixed answer) into
# a temporary directory, then on 127.0.0.1:
#
#   replica   shoal serve examples/models                    :PORT
#   gateway   shoal gateway, routes to that one replica     :PORT+1
#   bare      bench/gateway/bare                             :PORT+2
#
# 1. capacity: closed loop (c=32) straight to the replica, then through
#    the gateway; the capacity is the gateway path's, since client,
#    gateway and replica share the cores;
# 2. REPEAT times, in turn, open loop at RATE (default: half that
#    capacity) for DURATION: the replica directly, the gateway in front of
#    it, and the bare server; latency counts from each request's due time;
#    CPU time per request of the gateway, the replica and the bare server
#    from /proc over the measured window, and the cores busy with the
#    generator and the servers together (the machine's load in the test);
# 3. overload: open loop at OVERLOAD x capacity through the gateway with
#    a per-replica limit of 16 and a queue of 32: the gateway must answer
#    the excess with 503 at once and keep serving the rest.
#
# Every request is one iris row, POST /v2/models/iris/infer. It prints the
# markdown table of medians and leaves the raw JSON in the directory it
# names. Client, gateway and replica share the machine's cores.
#
# It also counts the gateway's garbage collections in each fixed-rate run
# (go_gc_duration_seconds_count of its /metrics).
#
# Environment: REPEAT (3), DURATION (5s), WARMUP (1s), RATE (0: half the
# capacity), OVERLOAD (2), PORT (18090), PIN (0; 1: with taskset, the load
# generator on CPU 0 and the servers on the other CPUs, so the generator
# does not take the servers' core), GW_FLAGS (more flags for the measured
# gateway, such as -gc-percent=100), CLIENT (the generator's HTTP client:
# lean, the default, or std for net/http's, as before 2026-11-25).
set -euo pipefail
cd "$(dirname "$0")/../.."

REPEAT=${REPEAT:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
RATE=${RATE:-0}
OVERLOAD=${OVERLOAD:-2}
PORT=${PORT:-18090}
PIN=${PIN:-0}
GW_FLAGS=${GW_FLAGS:-}
CLIENT=${CLIENT:-lean}
GEN=() SRV=()
if [ "$PIN" = 1 ]; then
	NCPU=$(nproc)
	if [ "$NCPU" -lt 2 ] || ! command -v taskset >/dev/null; then
		echo "PIN=1 needs taskset and 2 CPUs or more" >&2
		exit 1
	fi
	GEN=(taskset -c 0) SRV=(taskset -c "1-$((NCPU - 1))")
fi
RP=$PORT GP=$((PORT + 1)) BP=$((PORT + 2)) OP=$((PORT + 3))

OUT=$(mktemp -d "${TMPDIR:-/tmp}/shoal-gateway-bench.XXXXXX")
BIN=$OUT/bin
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.2
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "building into $BIN" >&2
go build -o "$BIN/shoal" ./cmd/shoal
go build -o "$BIN/load" ./bench/gateway/load
go build -o "$BIN/bare" ./bench/gateway/bare

BODY='{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}'
PATHQ=/v2/models/iris/infer

wait_ready() { # URL
	for _ in $(seq 1 500); do
		curl -sf -o /dev/null "$1" && return 0
		sleep 0.02
	done
	echo "not ready: $1" >&2
	return 1
}

"${SRV[@]}" "$BIN/shoal" serve -http 127.0.0.1:$RP -grpc '' -log-level warn examples/models &
RPID=$!; pids+=($RPID)
cat >"$OUT/routes.yaml" <<YAML
models:
  iris:
    revisions:
      - name: r1
        weight: 1
        replicas: [{http: "127.0.0.1:$RP"}]
YAML
cat >"$OUT/overload.yaml" <<YAML
models:
  iris:
    max_concurrency: 16
    revisions:
      - name: r1
        weight: 1
        replicas: [{http: "127.0.0.1:$RP"}]
YAML
"${SRV[@]}" "$BIN/shoal" gateway -routes "$OUT/routes.yaml" -http 127.0.0.1:$GP -grpc '' -log-level warn $GW_FLAGS &
GPID=$!; pids+=($GPID)
"${SRV[@]}" "$BIN/shoal" gateway -routes "$OUT/overload.yaml" -http 127.0.0.1:$OP -grpc '' -queue 32 -log-level warn &
OPID=$!; pids+=($OPID)
"${SRV[@]}" "$BIN/bare" -addr 127.0.0.1:$BP &
BPID=$!; pids+=($BPID)
wait_ready http://127.0.0.1:$RP/v2/health/ready
wait_ready http://127.0.0.1:$GP/v2/health/ready
wait_ready http://127.0.0.1:$OP/v2/health/ready
sleep 0.2

L() { "${GEN[@]}" "$BIN/load" -client "$CLIENT" -body "$BODY" -d "$DURATION" -warmup "$WARMUP" "$@"; }
gc_count() { # METRICS_URL: the process's garbage collections so far
	curl -sf "$1" | awk '$1 == "go_gc_duration_seconds_count" { print $2 }'
}

echo "capacity (closed loop, c=32): replica direct, then through the gateway" >&2
L -url http://127.0.0.1:$RP$PATHQ -c 32 -label capacity-direct >"$OUT/capacity-direct.json"
L -url http://127.0.0.1:$GP$PATHQ -c 32 -label capacity >"$OUT/capacity.json"
DCAP=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["ok_rps"]))' "$OUT/capacity-direct.json")
CAP=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["ok_rps"]))' "$OUT/capacity.json")
if [ "$RATE" = 0 ]; then RATE=$((CAP / 2)); fi
echo "capacity $CAP req/s; fixed rate $RATE req/s" >&2

for i in $(seq 1 "$REPEAT"); do
	echo "run $i/$REPEAT" >&2
	L -url http://127.0.0.1:$RP$PATHQ -rate "$RATE" -c 256 -pid $RPID -label direct >>"$OUT/direct.json"
	gc0=$(gc_count http://127.0.0.1:$GP/metrics)
	L -url http://127.0.0.1:$GP$PATHQ -rate "$RATE" -c 256 -pid $GPID,$RPID -label gateway >>"$OUT/gateway.json"
	echo "$(( $(gc_count http://127.0.0.1:$GP/metrics) - gc0 ))" >>"$OUT/gateway-gc.txt"
	L -url http://127.0.0.1:$BP$PATHQ -rate "$RATE" -c 256 -pid $BPID -label bare >>"$OUT/bare.json"
done
echo "overload: ${OVERLOAD}x capacity through the gateway" >&2
L -url http://127.0.0.1:$OP$PATHQ -rate $((CAP * OVERLOAD)) -c 1024 -pid $OPID -label overload >"$OUT/overload.json"

python3 - "$OUT" "$RPID" "$GPID" "$BPID" "$OPID" "$CAP" "$RATE" "$DCAP" <<'PY'
import json, statistics, sys
out, rpid, gpid, bpid, opid, cap, rate, dcap = sys.argv[1:]
def rows(name):
    return [json.loads(l) for l in open(f"{out}/{name}.json") if l.strip()]
med = lambda xs: statistics.median(xs)
d, g, b = rows("direct"), rows("gateway"), rows("bare")
ov = rows("overload")[0]
print(f"capacity (closed loop c=32): replica direct {dcap} req/s, through the gateway {cap} req/s; fixed rate: {rate} req/s; median of {len(d)} runs\n")
print("| target | p50 µs | p90 µs | p99 µs | errors | CPU µs/req (gateway) | CPU µs/req (replica or bare) | cores busy |")
print("|---|---|---|---|---|---|---|---|")
def busy(r):
    # generator, gateway and replica (or bare server) together, in cores
    return (r.get("self_cpu_us_per_req", 0) + sum(r["cpu_us_per_req"].values())) * r["rps"] / 1e6
def line(name, rs, gw_pid, srv_pid):
    e = med([sum(r.get("errors", {}).values()) for r in rs])
    gw = med([r["cpu_us_per_req"][gw_pid] for r in rs]) if gw_pid else None
    sv = med([r["cpu_us_per_req"][srv_pid] for r in rs])
    print(f"| {name} | {med([r['p50_us'] for r in rs]):.0f} | {med([r['p90_us'] for r in rs]):.0f} | {med([r['p99_us'] for r in rs]):.0f} | {e:.0f} | {'' if gw is None else f'{gw:.0f}'} | {sv:.0f} | {med([busy(r) for r in rs]):.2f} |")
line("replica direct", d, None, rpid)
line("gateway -> replica", g, gpid, rpid)
line("bare net/http", b, None, bpid)
print()
print(f"added by the gateway: p50 {med([r['p50_us'] for r in g]) - med([r['p50_us'] for r in d]):.0f} µs, "
      f"p99 {med([r['p99_us'] for r in g]) - med([r['p99_us'] for r in d]):.0f} µs; "
      f"gateway CPU / bare CPU per request: {med([r['cpu_us_per_req'][gpid] for r in g]) / med([r['cpu_us_per_req'][bpid] for r in b]):.2f}x")
gcs = [int(l) for l in open(f"{out}/gateway-gc.txt") if l.strip()]
print(f"gateway garbage collections per run (warm-up and measured window): median {med(gcs)}, runs {gcs}")
print()
print(f"overload ({ov['target_rate']:.0f} req/s offered, max_concurrency 16, queue 32): "
      f"{ov['ok_rps']:.0f} req/s served (p50 {ov['p50_us']:.0f} µs, p99 {ov['p99_us']:.0f} µs from the due time; "
      f"p50 {ov['sent_p50_us']:.0f} µs, p99 {ov['sent_p99_us']:.0f} µs from the send), "
      f"errors {ov.get('errors', {})}, rejection p99 {ov.get('reject_p99_us', 0):.0f} µs from the due time, "
      f"{ov.get('sent_reject_p99_us', 0):.0f} µs from the send; gateway CPU {ov['cpu_us_per_req'][opid]:.0f} µs/req")
print()
print("from the send (generator lag left out), medians: " + "; ".join(
    f"{n} p50 {med([r['sent_p50_us'] for r in rs]):.0f} µs p99 {med([r['sent_p99_us'] for r in rs]):.0f} µs"
    for n, rs in (("direct", d), ("gateway", g), ("bare", b))))
PY
echo "raw results: $OUT" >&2
