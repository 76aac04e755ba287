#!/usr/bin/env bash
# bench/up/run.sh: the benchmark of `shoal up`, reported in
# docs/control-plane.md. Run from anywhere as `bash bench/up/run.sh`.
#
# It builds shoal and bench/up/probe into a temporary directory, then:
#
# 1. RUNS times: starts `shoal up` with no argument on a fresh state
#    directory and free 127.0.0.1 ports, and polls a prediction of the
#    built-in iris deployment through the gateway every 2ms; it reports the
#    time from starting the process to the first 200;
# 2. starts `shoal up` with an iris deployment that scales to zero after
#    1s without traffic, and RUNS times waits for zero replicas, sends one
#    request and reports its latency (the activator holds it while a
#    replica starts).
#
# It prints a markdown table of medians, minimums and maximums.
# Environment: RUNS (5).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/shoal" ./cmd/shoal
go build -o "$dir/probe" ./bench/up/probe
"$dir/probe" -shoal "$dir/shoal" -runs "$RUNS"
