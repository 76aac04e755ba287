#!/usr/bin/env bash
# bench/onnx/run.sh: per-row latency of the iris ONNX models served over OIP
# REST, beside the XGBoost iris model, reported in docs/onnx.md. Run from
# anywhere as `bash bench/onnx/run.sh`.
#
# It builds shoal and bench/loadgen into a temporary directory and serves,
# from one `shoal serve` on 127.0.0.1, a model repository of four iris
# models:
#
#   xgb-iris      examples/models/iris (XGBoost trees, the native tree backend)
#   onnx-forest   internal/backend/onnx/testdata/forest_iris.onnx (TreeEnsembleClassifier + ZipMap)
#   onnx-logreg   internal/backend/onnx/testdata/logreg_iris.onnx (LinearClassifier + ZipMap)
#   onnx-mlp      internal/backend/onnx/testdata/mlp_iris.onnx (MatMul, Add, Relu, Softmax, ...)
#
# Then, REPEAT times, it drives each model in turn (the models rotate, so
# that whatever else the machine does at some moment falls on all of them
# alike) with bench/loadgen, closed loop, POST /v2/models/NAME/infer:
#
#   1 row,   concurrency 1
#   1 row,   concurrency 8
#   64 rows, concurrency 1 (the per-row cost of a batch in one request)
#
# and prints a markdown table of the medians over the repeats: requests/s,
# p50 and p99 latency, the server's CPU time per request, and for 64 rows
# the p50 and CPU per row. The raw JSON stays in the directory it names at
# the end. The load generator runs on the same machine as the server and
# shares its cores.
#
# Environment: REPEAT (5), DURATION (3s), WARMUP (1s), PORT (18110).
set -euo pipefail
cd "$(dirname "$0")/../.."

REPEAT=${REPEAT:-5}
DURATION=${DURATION:-3s}
WARMUP=${WARMUP:-1s}
PORT=${PORT:-18110}

OUT=$(mktemp -d "${TMPDIR:-/tmp}/shoal-onnx-bench.XXXXXX")
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

if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
	log "port $PORT is in use: set PORT"
	exit 1
fi

log "building into $BIN"
go build -o "$BIN/shoal" ./cmd/shoal
go build -o "$BIN/loadgen" ./bench/loadgen

# The model repository.
REPO=$OUT/models
mkdir -p "$REPO/xgb-iris/1"
cp examples/models/iris/1/model.json examples/models/iris/1/model.yaml "$REPO/xgb-iris/1/"
for m in forest logreg mlp; do
	mkdir -p "$REPO/onnx-$m/1"
	cp "internal/backend/onnx/testdata/${m}_iris.onnx" "$REPO/onnx-$m/1/model.onnx"
done
MODELS="xgb-iris onnx-forest onnx-logreg onnx-mlp"

# Request bodies: one iris row, and 64 rows (the 40 rows of the fixture
# cycled), for the XGBoost model's input "input" and the ONNX models' "X".
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
rows = json.load(open("internal/backend/onnx/testdata/logreg_iris.json"))["X"]
for n in (1, 64):
    data = [x for i in range(n) for x in rows[i % len(rows)]]
    for name, inp in (("xgb", "input"), ("onnx", "X")):
        body = {"inputs": [{"name": inp, "shape": [n, 4], "datatype": "FP32", "data": data}]}
        with open(f"{out}/{name}-{n}.json", "w") as f:
            json.dump(body, f)
EOF

{
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "kernel: $(uname -r)"
	go version
	echo "loadavg at start: $(cut -d" " -f1-3 /proc/loadavg)"
	dirty=$(git status --porcelain -- cmd internal examples go.mod 2>/dev/null | head -1)
	echo "shoal commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${dirty:+ with uncommitted changes}"
} >"$OUT/machine.txt"

base=http://127.0.0.1:$PORT
"$BIN/shoal" serve -http "127.0.0.1:$PORT" -grpc '' "$REPO" >>"$OUT/shoal.log" 2>&1 &
server=$!
pids+=("$server")
for _ in $(seq 3000); do
	if curl -sf -o /dev/null "$base/v2/health/ready"; then break; fi
	if ! kill -0 "$server" 2>/dev/null; then
		log "shoal exited; its log:"; cat "$OUT/shoal.log" >&2; exit 1
	fi
	sleep 0.01
done

body() { case $1 in xgb-*) echo "$OUT/xgb-$2.json" ;; *) echo "$OUT/onnx-$2.json" ;; esac; }

# Every model must answer both bodies before anything is measured.
for m in $MODELS; do
	for n in 1 64; do
		if ! curl -sf -o "$OUT/check-$m-$n.json" -X POST -H 'Content-Type: application/json' \
			--data-binary "@$(body "$m" "$n")" "$base/v2/models/$m/infer"; then
			log "$m did not answer a $n-row request:"
			curl -s -X POST -H 'Content-Type: application/json' --data-binary "@$(body "$m" "$n")" "$base/v2/models/$m/infer" >&2 || true
			exit 1
		fi
	done
done

# The ONNX models' labels must be those scikit-learn gave for the same rows
# (the fixtures' expected outputs).
python3 - "$OUT" <<'EOF2'
import json, sys
out = sys.argv[1]
for m in ("forest", "logreg", "mlp"):
    fx = json.load(open(f"internal/backend/onnx/testdata/{m}_iris.json"))
    rows = json.load(open("internal/backend/onnx/testdata/logreg_iris.json"))["X"]
    if fx["X"] != rows:
        continue
    for n in (1, 64):
        got = json.load(open(f"{out}/check-onnx-{m}-{n}.json"))
        label = next(o for o in got["outputs"] if o["name"] == "label")["data"]
        want = [fx["label"][i % len(rows)] for i in range(n)]
        if label != want:
            sys.exit(f"onnx-{m} answered labels {label[:8]}..., want {want[:8]}...")
EOF2

for rep in $(seq "$REPEAT"); do
	log "repeat $rep/$REPEAT"
	for kc in "1 1" "1 8" "64 1"; do
		set -- $kc
		for m in $MODELS; do
			log "  $m rows=$1 c=$2"
			"$BIN/loadgen" -label "$m rows=$1" -url "$base/v2/models/$m/infer" -body "@$(body "$m" "$1")" \
				-c "$2" -d "$DURATION" -warmup "$WARMUP" -pid "$server" >>"$OUT/loadgen.jsonl"
		done
	done
done

cat "$OUT/machine.txt"
echo
python3 - "$OUT/loadgen.jsonl" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault((r["label"], r["concurrency"]), []).append(r)
med = lambda rs, k: statistics.median(r[k] for r in rs)
print("| model | rows | c | req/s | p50 µs | p99 µs | server CPU µs/req | p50 µs/row | CPU µs/row | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (label, c), rs in runs.items():
    model, rows = label.split(" rows=")
    rows = int(rows)
    p50, cpu = med(rs, "p50_us"), med(rs, "server_cpu_us_per_req")
    print(f"| {model} | {rows} | {c} | {med(rs, 'rps'):.0f} | {p50:.0f} | {med(rs, 'p99_us'):.0f} | {cpu:.0f} | "
          f"{p50 / rows:.1f} | {cpu / rows:.1f} | {sum(r['errors'] for r in rs)} |")
print(f"\nmedians of {len(next(iter(runs.values())))} runs each")
EOF
echo
echo "raw results: $OUT"
