#!/usr/bin/env bash
# The web UI at scale: 300 Stages and 1,000 Freight (bench/scale-pipeline.sh builds them: 100
# rounds of a new tag per image, each minted by a discovery pass). Then it measures, after a
# sign-in, the pipeline page (/projects/bench) and the Freight timeline
# (/projects/bench/freight, its newest page and its 11th, Freight 501-550):
#   - server time: the median of 20 GETs of each page, next to /healthz in the same run as
#     the floor;
#   - Chromium navigation-to-load (Navigation Timing's loadEventEnd, headless chromium driven
#     over WebDriver by chromedriver), again next to /healthz;
#   - page weight: the HTML, CSS and JS of each page, raw and gzip-compressed.
#
#   bench/ui-page.sh            # BARGE=path/to/barge to measure another build
#
# Goals (issue 17): server time ≤ 50 ms, navigation-to-load ≤ 1 s, ≤ 300 KB compressed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BARGE:-}" ]; then
  cargo build --release --locked -q -p barge
  BARGE=$PWD/target/release/barge
fi
. bench/scale-pipeline.sh
start_pipeline 1000
python3 bench/ui-page.py "http://$listen" "$token"
