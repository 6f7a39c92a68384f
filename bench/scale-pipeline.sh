# Sourced by bench/ui-page.sh and bench/api-p99.sh: a 300-Stage pipeline with FREIGHT Freight
# on a local registry, served by `barge serve`. 10 Warehouses, each with 30 control-flow
# Stages, all auto-promoted: dev, 14 regional staging Stages fanning out of it, a prod after
# each, and one global Stage fanning in from the 14 prods.
#
# The Freight is minted the way barge mints it, but in bulk: each round pushes one new tag
# to each of the 10 images and runs one `barge discover --db` pass over every Warehouse (the
# discovery and mint the daemon runs), FREIGHT / 10 rounds before the daemon starts. The
# daemon then auto-promotes the newest Freight through all 300 Stages. (Refreshing a running
# daemon once per round took over 10 minutes for 1,000 Freight, the daemon deciding every
# Stage after each mint.) So each Stage holds the newest Freight; older Freight never entered
# a Stage. Tags are immutable here, so the subscriptions cache digests by tag (Kargo's
# `cacheByTag`): a pass asks the registry for the new tag's digest only.
#
# Sets: work (a temporary directory, removed on exit), listen, token; needs BARGE.
# serve_pipeline BARGE serves the same store with another build.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_pipeline() {
  local freight=$1
  work=$(mktemp -d)
  local port
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
        f"spec:\n  interval: 1h\n  subscriptions:\n    - image: {{repoURL: ghcr.io/bench/{w}, constraint: ^1.0.0, cacheByTag: true}}\n"
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

  token=bench-token
  export BARGE_DB="sqlite://$work/barge.db" BARGE_WORK_DIR="$work/cache" BARGE_LOG=warn BARGE_TOKEN=$token
  pipeline_rewrite="ghcr.io/bench/=127.0.0.1:$port/bench/"
  local started=$SECONDS
  python3 bench/mint-freight.py "$BARGE" "$work/defs" "$pipeline_rewrite" "127.0.0.1:$port" "$freight"
  echo "minted $freight Freight in $((SECONDS - started)) s"
  serve_pipeline "$BARGE"
}

# Serves the pipeline's store with the barge at $1 (stopping the one serving it before) and
# waits until all 300 Stages are up to date: two builds can so be measured on one store.
serve_pipeline() {
  local barge=$1
  if [ -n "$serve_pid" ]; then kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; fi
  listen=127.0.0.1:$(free_port)
  "$barge" serve "$work/defs" --listen "$listen" --rewrite "$pipeline_rewrite" 2>>"$work/serve.log" &
  serve_pid=$!
  local started=$SECONDS
  local up=0
  for _ in $(seq 1200); do
    up=$(BARGE_SERVER=http://$listen "$barge" get stages -o json 2>/dev/null | python3 -c 'import json,sys; print(sum(r["state"]=="UpToDate" for s in json.load(sys.stdin)["items"] for r in s["status"]["barge"]["requests"]))' 2>/dev/null || echo 0)
    [ "$up" = 300 ] && break
    sleep 0.5
  done
  echo "stages up to date: $up after $((SECONDS - started)) s"
}
