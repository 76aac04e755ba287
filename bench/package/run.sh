#!/usr/bin/env bash
# bench/package/run.sh: the benchmark of `shoal package`, reported in
# docs/packaging.md. Run from anywhere as `bash bench/package/run.sh`; it
# needs go, curl and a Docker engine (for the run half; the build half runs
# without one). It pulls no image.
#
# It builds a static shoal (CGO_ENABLED=0) into a temporary directory, then:
#
# 1. RUNS times: `shoal package examples/models -t TAG -o iris.tar` (the
#    iris XGBoost model; every run starts from nothing cached) and reports
#    the wall time; it checks that every run gives the same image digest;
# 2. reports the image's size: the tarball, each layer compressed, and the
#    size `docker image inspect` reports once loaded (uncompressed);
# 3. times `docker load` once, then RUNS times: starts the image with
#    `docker run -d -p 127.0.0.1:PORT:8080` and polls an iris prediction
#    with curl (every ~10 ms) until the first 200; it reports the time from
#    invoking `docker run` to that 200, split at the container's
#    State.StartedAt into the engine's part and shoal's part, and removes
#    the container.
#
# It prints a markdown table of medians, minimums and maximums, and removes
# the image it loaded. Environment: RUNS (5), PORT (18480).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
PORT=${PORT:-18480}
dir=$(mktemp -d)
tag="shoal-bench-package-$$:1"
cid=""
cleanup() {
	if [ -n "$cid" ]; then docker rm -f "$cid" >/dev/null 2>&1 || true; fi
	docker rmi -f "$tag" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# stats prints "median min max" of its arguments.
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%s %s %s", m, a[1], a[NR]}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b/1048576}'; }

CGO_ENABLED=0 go build -o "$dir/shoal" ./cmd/shoal
echo "shoal binary: $(mib "$(stat -c %s "$dir/shoal")") MiB" >&2

builds=()
digest=""
for i in $(seq "$RUNS"); do
	rm -f "$dir/iris.tar"
	t0=$(now_ms)
	out=$("$dir/shoal" package examples/models -t "$tag" -o "$dir/iris.tar" -q)
	t1=$(now_ms)
	builds+=($((t1 - t0)))
	d=$(echo "$out" | awk '{print $2}')
	if [ -n "$digest" ] && [ "$d" != "$digest" ]; then
		echo "run $i gave digest $d, run 1 gave $digest: not reproducible" >&2
		exit 1
	fi
	digest=$d
	echo "build $i: $((t1 - t0)) ms, $d" >&2
done

tar_bytes=$(stat -c %s "$dir/iris.tar")
layers=$(tar -tvf "$dir/iris.tar" | awk '$6 ~ /\.tar\.gz$/ {
	if ($3 >= 1048576) printf "%s%.1f MiB", sep, $3/1048576; else printf "%s%.1f KiB", sep, $3/1024
	sep = " + "
}')

run_rows=""
if docker version >/dev/null 2>&1; then
	t0=$(now_ms)
	docker load -i "$dir/iris.tar" >/dev/null
	load_ms=$(($(now_ms) - t0))
	img_bytes=$(docker image inspect --format '{{.Size}}' "$tag")
	req='{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
	firsts=() engine=() served=()
	for i in $(seq "$RUNS"); do
		t0=$(now_ms)
		cid=$(docker run -d -p "127.0.0.1:$PORT:8080" "$tag")
		until curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$req" "http://127.0.0.1:$PORT/v2/models/iris/infer"; do
			if [ $(($(now_ms) - t0)) -gt 60000 ]; then
				echo "no prediction after 60s" >&2
				docker logs "$cid" >&2
				exit 1
			fi
			sleep 0.01
		done
		t1=$(now_ms)
		started=$(docker inspect --format '{{.State.StartedAt}}' "$cid")
		ts=$(($(date -d "$started" +%s%N) / 1000000))
		firsts+=($((t1 - t0)))
		engine+=($((ts - t0)))
		served+=($((t1 - ts)))
		echo "docker run -> first prediction $i: $((t1 - t0)) ms (container started after $((ts - t0)) ms)" >&2
		docker rm -f "$cid" >/dev/null
		cid=""
	done
	read -r fm fmin fmax <<<"$(stats "${firsts[@]}")"
	read -r em emin emax <<<"$(stats "${engine[@]}")"
	read -r sm smin smax <<<"$(stats "${served[@]}")"
	run_rows="| docker load of the tarball | $load_ms ms (once) |
| image size once loaded (docker image inspect) | $(mib "$img_bytes") MiB |
| docker run -> first prediction (median, min-max of $RUNS) | $fm ms ($fmin-$fmax) |
| of which: docker run -> container started (State.StartedAt) | $em ms ($emin-$emax) |
| of which: container started -> first prediction | $sm ms ($smin-$smax) |"
else
	run_rows="| docker run -> first prediction | not measured: no Docker engine answers |"
fi

read -r bm bmin bmax <<<"$(stats "${builds[@]}")"
cat <<EOF
| measure | value |
|---|---|
| shoal package examples/models -o iris.tar (median, min-max of $RUNS) | $bm ms ($bmin-$bmax) |
| image digest (same in every run) | \`$digest\` |
| tarball (docker load input) | $(mib "$tar_bytes") MiB |
| layers, gzip (binary + models) | $layers |
$run_rows
EOF
