#!/usr/bin/env bash
# The REST API's two list reads at scale (issue 16): `GET /api/v1/projects/bench/stages` at
# 300 Stages and `GET /api/v1/projects/bench/freight?limit=100` at 10,000 Freight
# (bench/scale-pipeline.sh builds them: 1,000 rounds of a new tag per image, each minted by a
# discovery pass). Each route's p50 and p99 over N requests on one kept-alive connection,
# interleaved with `GET /healthz`, the floor measured in the same run.
#
#   bench/api-p99.sh            # FREIGHT=N (default 10000), REQUESTS=N (default 1000),
#                               # BARGE=path/to/barge to measure another build,
#                               # AFTER=path/to/barge to measure a second one on the same store
#
# Goal: p99 ≤ 10 ms for both.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BARGE:-}" ]; then
  cargo build --release --locked -q -p barge
  BARGE=$PWD/target/release/barge
fi
. bench/scale-pipeline.sh
start_pipeline "${FREIGHT:-10000}"
echo "== $BARGE"
python3 bench/api-p99.py "$listen" "$token" "${REQUESTS:-1000}"
# AFTER=path/to/another/barge: the same store served by that build, measured the same way
# (before/after comparisons on one store, one load).
if [ -n "${AFTER:-}" ]; then
  serve_pipeline "$AFTER"
  echo "== $AFTER"
  python3 bench/api-p99.py "$listen" "$token" "${REQUESTS:-1000}"
fi
