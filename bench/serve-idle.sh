#!/usr/bin/env bash
# Idle cost of `barge serve` at scale: 100 Warehouses (one image each, on a local registry)
# and 300 Stages (dev → staging → prod per app, all auto-promoted, control-flow stages so no
# git is involved). Once every Stage has its Freight, the daemon is left idle for IDLE seconds
# (default 60) and its resident memory and CPU are sampled from /proc. The registry idling
# beside it in the same run is the reference: a daemon that does nothing but wait for requests.
#
#   bench/serve-idle.sh [IDLE_SECONDS]
#
# Goal: at most 30 MB resident.
set -euo pipefail
cd "$(dirname "$0")/.."
idle=${1:-60}
cargo build --release --locked -q -p barge
barge=$PWD/target/release/barge
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/data}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
serve_pid=
trap 'kill $registry_pid $serve_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
for i in $(seq 100); do
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
for i in range(1, 101):
    docs.append(
        f"apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: app-{i}, namespace: bench}}\n"
        f"spec:\n  interval: 1m\n  subscriptions:\n    - image: {{repoURL: ghcr.io/bench/app-{i}, constraint: ^1.0.0}}\n"
    )
    for stage, source in [("dev", "direct: true"), ("staging", f"stages: [app-{i}-dev]"), ("prod", f"stages: [app-{i}-staging]")]:
        docs.append(
            f"apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: app-{i}-{stage}, namespace: bench}}\n"
            f"spec:\n  requestedFreight:\n    - origin: {{kind: Warehouse, name: app-{i}}}\n      sources: {{{source}}}\n"
        )
open(sys.argv[1], "w").write("---\n".join(docs))
PY

export BARGE_DB="sqlite://$work/barge.db" BARGE_WORK_DIR="$work/cache" BARGE_LOG=warn
"$barge" serve "$work/defs" --rewrite "ghcr.io/bench/=127.0.0.1:$port/bench/" 2>"$work/serve.log" &
serve_pid=$!
start=$(date +%s.%N)
up=0
for _ in $(seq 600); do
  up=$("$barge" get stages -o json 2>/dev/null | python3 -c 'import json,sys; print(sum(r["state"]=="UpToDate" for s in json.load(sys.stdin)["items"] for r in s["status"]["barge"]["requests"]))' 2>/dev/null || echo 0)
  [ "$up" = 300 ] && break
  sleep 0.5
done
settled=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
[ "$up" = 300 ] || { echo "only $up of 300 stages settled; see $work/serve.log"; tail "$work/serve.log"; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
b0=$(ticks $serve_pid); r0=$(ticks $registry_pid)
peak=0; reg_peak=0; samples=
for _ in $(seq "$idle"); do
  sleep 1
  r=$(rss_kb $serve_pid); [ "$r" -gt "$peak" ] && peak=$r; samples="$samples $r"
  r=$(rss_kb $registry_pid); [ "$r" -gt "$reg_peak" ] && reg_peak=$r
done
b1=$(ticks $serve_pid); r1=$(ticks $registry_pid)
python3 - "$settled" "$idle" "$hz" "$b0" "$b1" "$r0" "$r1" "$peak" "$reg_peak" "$samples" <<'PY'
import sys, statistics
settled, idle, hz, b0, b1, r0, r1, peak, reg, samples = sys.argv[1:]
median = statistics.median(int(x) for x in samples.split()) / 1024
idle, hz = float(idle), float(hz)
cpu = (int(b1) - int(b0)) / hz / idle * 100
reg_cpu = (int(r1) - int(r0)) / hz / idle * 100
peak, reg = int(peak) / 1024, int(reg) / 1024
print(f"barge serve: 100 warehouses, 300 stages, all 300 promoted in {settled}s")
print(f"idle for {idle:.0f}s:")
print(f"  barge serve      RSS {peak:6.1f} MB   CPU {cpu:5.2f}%   ({peak / 30:.2f}x the 30 MB goal; median {median:.1f} MB)")
print(f"  docker-registry  RSS {reg:6.1f} MB   CPU {reg_cpu:5.2f}%   (the reference: an idle daemon)")
print(f"  ratio            RSS {peak / reg:.2f}x   CPU {cpu / max(reg_cpu, 0.01):.1f}x the registry")
PY
