#!/usr/bin/env bash
# The web UI's pipeline page at scale: 300 Stages and 1,000 Freight. 10 Warehouses, each with
# 30 control-flow Stages, all auto-promoted: dev, 14 regional staging Stages fanning out of
# it, a prod after each, and one global Stage fanning in from the 14 prods. A Warehouse mints
# one Freight per new tag, so 100 rounds push a tag to each image and refresh every
# Warehouse. Then it measures, after a sign-in:
#   - server time: the median of 20 GETs of /projects/bench (curl's time_total), next to
#     /healthz in the same run as the floor;
#   - Chromium navigation-to-load (Navigation Timing's loadEventEnd, headless chromium driven
#     over WebDriver by chromedriver), again next to /healthz;
#   - page weight: the HTML, CSS and JS of the first view, raw and gzip-compressed.
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
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
cat > "$work/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/data}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
serve_pid=
trap 'kill $registry_pid $serve_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
for i in $(seq 10); do
  python3 scripts/push-demo-images.py "127.0.0.1:$port" "bench/app-$i" 1.0.0 >/dev/null
done

mkdir -p "$work/defs"
python3 - "$work/defs/bench.yaml" <<'PY'
import sys
docs = [
    "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: bench}\n",
    "apiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {name: bench, namespace: bench}\n"
    "spec:\n  promotionPolicies:\n    - stageSelector: {name: \"glob:*\"}\n      autoPromotionEnabled: true\n",
]
def stage(name, warehouse, source):
    return (f"apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: {name}, namespace: bench}}\n"
            f"spec:\n  requestedFreight:\n    - origin: {{kind: Warehouse, name: {warehouse}}}\n      sources: {{{source}}}\n")
for i in range(1, 11):
    w = f"app-{i}"
    docs.append(
        f"apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: {w}, namespace: bench}}\n"
        f"spec:\n  interval: 1h\n  subscriptions:\n    - image: {{repoURL: ghcr.io/bench/{w}, constraint: ^1.0.0}}\n"
    )
    docs.append(stage(f"{w}-dev", w, "direct: true"))
    prods = []
    for r in range(1, 15):
        docs.append(stage(f"{w}-r{r}-staging", w, f"stages: [{w}-dev]"))
        docs.append(stage(f"{w}-r{r}-prod", w, f"stages: [{w}-r{r}-staging]"))
        prods.append(f"{w}-r{r}-prod")
    docs.append(stage(f"{w}-global", w, f"stages: [{', '.join(prods)}]"))
open(sys.argv[1], "w").write("---\n".join(docs))
PY

token=bench-ui-token
export BARGE_DB="sqlite://$work/barge.db" BARGE_WORK_DIR="$work/cache" BARGE_LOG=warn BARGE_TOKEN=$token
listen=127.0.0.1:$(free_port)
"$BARGE" serve "$work/defs" --listen "$listen" --rewrite "ghcr.io/bench/=127.0.0.1:$port/bench/" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 1200); do
  up=$(BARGE_SERVER=http://$listen "$BARGE" get stages -o json 2>/dev/null | python3 -c 'import json,sys; print(sum(r["state"]=="UpToDate" for s in json.load(sys.stdin) for r in s["requests"]))' 2>/dev/null || echo 0)
  [ "$up" = 300 ] && break
  sleep 0.5
done
freight=$(BARGE_SERVER=http://$listen "$BARGE" get freight -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "stages up to date: $up, freight: $freight"
python3 bench/ui-page.py "http://$listen" "$token" "127.0.0.1:$port"
